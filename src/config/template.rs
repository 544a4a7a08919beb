//! Label and value templates: text with `$field` or `${field}` references (`$$` is a dollar).
//!
//! Parsing is shared by validation (which checks that every referenced field exists) and by
//! the pipeline build (which resolves each reference to a capture index once).

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Text copied as is.
    Literal(String),
    /// The value of a named field (a regex capture or a built-in such as `__file__`).
    Field(String),
}

/// Built-in field: the path of the file the line was read from.
pub const FILE_FIELD: &str = "__file__";

/// Built-in field: the name of the source a record or document came from.
pub const SOURCE_FIELD: &str = "__source__";

/// Built-in field of container log formats: `stdout` or `stderr`.
pub const STREAM_FIELD: &str = "__stream__";

/// Built-in field of container log formats: the time the runtime wrote the line, as written
/// (RFC 3339).
pub const TIME_FIELD: &str = "__time__";

/// The field of a probe module's url and headers: the `target` parameter of `/probe`.
pub const TARGET_FIELD: &str = "target";

/// `text` with every `$target` replaced by `target` (`$$` is a dollar); the template was
/// validated, so another field cannot occur (it would be left out).
pub fn substitute_target(pieces: &[Piece], target: &str) -> String {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Literal(l) => out.push_str(l),
            Piece::Field(f) if f == TARGET_FIELD => out.push_str(target),
            Piece::Field(_) => {}
        }
    }
    out
}

/// Parses a template into pieces, or explains what is wrong with it.
pub fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        literal.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let Some(end) = braced.find('}') else {
                return Err(format!("unclosed `${{` in {text:?}"));
            };
            (&braced[..end], end + 2)
        } else if let Some(after_escape) = after.strip_prefix('$') {
            literal.push('$');
            rest = after_escape;
            continue;
        } else {
            let len = after
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            (&after[..len], len)
        };
        if name.is_empty() {
            return Err(format!(
                "`$` must be followed by a field name in {text:?} (write `$$` for a literal dollar)"
            ));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Field(name.to_owned()));
        rest = &after[consumed..];
    }
    literal.push_str(rest);
    if !literal.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Piece {
        Piece::Literal(s.into())
    }
    fn field(s: &str) -> Piece {
        Piece::Field(s.into())
    }

    #[test]
    fn parses_plain_braced_and_escaped_references() {
        assert_eq!(parse("GET").unwrap(), vec![lit("GET")]);
        assert_eq!(parse("$method").unwrap(), vec![field("method")]);
        assert_eq!(
            parse("${a}-$b.x").unwrap(),
            vec![field("a"), lit("-"), field("b"), lit(".x")]
        );
        assert_eq!(parse("$$5").unwrap(), vec![lit("$5")]);
        assert_eq!(parse("").unwrap(), vec![lit("")]);
    }

    #[test]
    fn rejects_dangling_dollars() {
        assert!(parse("5$").is_err());
        assert!(parse("${a").is_err());
        assert!(parse("$ x").is_err());
    }
}
