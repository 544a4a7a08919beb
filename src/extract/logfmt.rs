//! logfmt records: `key=value key2="quoted \"value\"" flag` (the format of Heroku, Go's
//! go-kit/log and logrus text output, and Prometheus' own logs).
//!
//! A record is split once into spans of keys and values ([`parse`]); a rule then reads the
//! values of the keys it names ([`value`]), unescaping quoted ones. Written here rather than
//! taken from a crate: the format is a few rules, and spans into the line keep the per-record
//! cost at one pass and no allocation until a value is read.

/// One `key=value` of a record, as byte spans into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    key: (usize, usize),
    /// Without the quotes of a quoted value.
    value: (usize, usize),
    /// The value was quoted (escapes are undone when it is read).
    quoted: bool,
}

/// Splits `line` into `out` (cleared first). A key without `=` has an empty value. Returns
/// false when a quoted value is not closed (the pairs before it are in `out`).
pub fn parse(line: &str, out: &mut Vec<Pair>) -> bool {
    out.clear();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' {
            i += 1;
        }
        let key = (key_start, i);
        if i >= b.len() || b[i] != b'=' {
            out.push(Pair {
                key,
                value: (i, i),
                quoted: false,
            });
            continue;
        }
        i += 1; // '='
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let value_start = i;
            let mut closed = false;
            while i < b.len() {
                match b[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        closed = true;
                        break;
                    }
                    _ => i += 1,
                }
            }
            if !closed {
                return false;
            }
            out.push(Pair {
                key,
                value: (value_start, i),
                quoted: true,
            });
            i += 1; // closing quote
        } else {
            let value_start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push(Pair {
                key,
                value: (value_start, i),
                quoted: false,
            });
        }
    }
    true
}

/// The value of the first pair whose key is `key` (quoted values unescaped: `\"`, `\\`,
/// `\n`, `\t`, `\r`); `None` when the record has no such key.
pub fn value(line: &str, pairs: &[Pair], key: &str) -> Option<String> {
    let pair = pairs.iter().find(|p| &line[p.key.0..p.key.1] == key)?;
    let raw = &line[pair.value.0..pair.value.1];
    if !pair.quoted || !raw.contains('\\') {
        return Some(raw.to_owned());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(line: &str, key: &str) -> Option<String> {
        let mut pairs = Vec::new();
        assert!(parse(line, &mut pairs), "{line}");
        value(line, &pairs, key)
    }

    #[test]
    fn reads_plain_quoted_escaped_and_bare_keys() {
        let line = r#"ts=2026-11-28T10:00:00Z level=info msg="request done: \"GET /\"" path=/api dur=0.042 cached"#;
        assert_eq!(read(line, "level").as_deref(), Some("info"));
        assert_eq!(
            read(line, "msg").as_deref(),
            Some(r#"request done: "GET /""#)
        );
        assert_eq!(read(line, "path").as_deref(), Some("/api"));
        assert_eq!(read(line, "dur").as_deref(), Some("0.042"));
        assert_eq!(read(line, "cached").as_deref(), Some(""));
        assert_eq!(read(line, "missing"), None);
    }

    #[test]
    fn first_occurrence_wins_and_empty_values_are_empty() {
        assert_eq!(read("a=1 a=2", "a").as_deref(), Some("1"));
        assert_eq!(read(r#"a= b="" c=3"#, "a").as_deref(), Some(""));
        assert_eq!(read(r#"a= b="" c=3"#, "b").as_deref(), Some(""));
        assert_eq!(read(r#"a= b="" c=3"#, "c").as_deref(), Some("3"));
    }

    #[test]
    fn quoted_values_keep_spaces_equals_and_non_ascii() {
        let line = r#"msg="a = b  c" user="Zoë 東京" n=1"#;
        assert_eq!(read(line, "msg").as_deref(), Some("a = b  c"));
        assert_eq!(read(line, "user").as_deref(), Some("Zoë 東京"));
        assert_eq!(read(line, "n").as_deref(), Some("1"));
    }

    #[test]
    fn an_unterminated_quote_is_refused() {
        let mut pairs = Vec::new();
        assert!(!parse(r#"a=1 msg="never closed"#, &mut pairs));
        assert!(!parse(r#"msg="ends in backslash\"#, &mut pairs));
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let mut pairs = Vec::new();
        for line in ["=", "==", "=\"", "\"", "\\", "a=\"\\", "é=é", "  ", "a=b=c"] {
            parse(line, &mut pairs);
            for p in &pairs {
                let _ = value(line, &pairs, &line[p.key.0..p.key.1]);
            }
        }
    }
}
