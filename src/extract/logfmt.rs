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

impl Pair {
    /// The pair's key, as written in `line` (the record it was split from).
    pub fn key<'a>(&self, line: &'a str) -> &'a str {
        &line[self.key.0..self.key.1]
    }
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

/// The value of the first pair whose key is `key` (a quoted value unescaped, see
/// [`unescape`]); `None` when the record has no such key.
pub fn value(line: &str, pairs: &[Pair], key: &str) -> Option<String> {
    let mut text = String::new();
    value_into(line, pairs, key, &mut text).then_some(text)
}

/// [`value`] appended to `out` (a buffer reused from record to record); `false`, and `out`
/// unchanged, when the record has no such key.
pub fn value_into(line: &str, pairs: &[Pair], key: &str, out: &mut String) -> bool {
    let Some(pair) = pairs.iter().find(|p| &line[p.key.0..p.key.1] == key) else {
        return false;
    };
    let raw = &line[pair.value.0..pair.value.1];
    if !pair.quoted || !raw.contains('\\') {
        out.push_str(raw);
    } else {
        out.push_str(&unescape(raw));
    }
    true
}

/// The text of a quoted value without its escapes, as the writers of logfmt escape it:
/// go-logfmt (go-kit/log, Prometheus 2's logs) writes `\"`, `\\`, `\n`, `\r`, `\t` and other
/// control characters as `\u00XX`; Go's `strconv.Quote` (log/slog's text handler, so
/// Prometheus 3's logs, and logrus) adds `\a`, `\b`, `\f`, `\v`, `\xXX` (a control byte, or a
/// byte that was not UTF-8), `\uXXXX` and `\UXXXXXXXX` (characters it does not print);
/// JSON-minded writers add `\/` and surrogate pairs (`\ud83d\ude00`). All of these are
/// decoded. A surrogate without its pair, a `\U` beyond Unicode and bytes that do not make
/// UTF-8 become U+FFFD, as invalid text does everywhere else. Any other backslash is kept
/// with what follows it (`C:\dir`): it was not an escape its writer made.
pub fn unescape(raw: &str) -> String {
    let b = raw.as_bytes();
    // Bytes, not chars: `\xXX` escapes may spell out a character one byte at a time.
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(found) = memchr::memchr(b'\\', &b[i..]) {
        let at = i + found;
        out.extend_from_slice(&b[i..at]);
        let simple = match b.get(at + 1) {
            Some(b'"') => Some(b'"'),
            Some(b'\\') => Some(b'\\'),
            Some(b'/') => Some(b'/'),
            Some(b'\'') => Some(b'\''),
            Some(b'n') => Some(b'\n'),
            Some(b't') => Some(b'\t'),
            Some(b'r') => Some(b'\r'),
            Some(b'a') => Some(0x07),
            Some(b'b') => Some(0x08),
            Some(b'f') => Some(0x0c),
            Some(b'v') => Some(0x0b),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            i = at + 2;
            continue;
        }
        let (decoded, len) = match b.get(at + 1) {
            Some(b'x') => match hex(b, at + 2, 2) {
                Some(byte) => {
                    out.push(byte as u8);
                    i = at + 4;
                    continue;
                }
                None => (None, 0),
            },
            Some(b'u') => match hex(b, at + 2, 4) {
                Some(high @ 0xD800..=0xDBFF) => {
                    let low = (b.get(at + 6..at + 8) == Some(b"\\u"))
                        .then(|| hex(b, at + 8, 4))
                        .flatten()
                        .filter(|low| (0xDC00..=0xDFFF).contains(low));
                    match low {
                        Some(low) => {
                            let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                            (char::from_u32(c), 12)
                        }
                        None => (Some(char::REPLACEMENT_CHARACTER), 6),
                    }
                }
                Some(unit) => (
                    Some(char::from_u32(unit).unwrap_or(char::REPLACEMENT_CHARACTER)),
                    6,
                ),
                None => (None, 0),
            },
            Some(b'U') => match hex(b, at + 2, 8) {
                Some(c) => (
                    Some(char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER)),
                    10,
                ),
                None => (None, 0),
            },
            _ => (None, 0),
        };
        match decoded {
            Some(c) => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                i = at + len;
            }
            None => {
                // Not an escape: the backslash stays, what follows is read as text.
                out.push(b'\\');
                i = at + 1;
            }
        }
    }
    out.extend_from_slice(&b[i..]);
    match String::from_utf8(out) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// The number spelled by the `digits` hex digits at `at`, if they are all there.
fn hex(b: &[u8], at: usize, digits: usize) -> Option<u32> {
    let spelled = b.get(at..at + digits)?;
    spelled.iter().try_fold(0u32, |n, d| {
        let v = (*d as char).to_digit(16)?;
        Some(n << 4 | v)
    })
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

    /// What go-logfmt (`\u00XX` for control characters) and Go's `strconv.Quote` (slog, logrus:
    /// `\xXX`, `\a`, `\U...`) write is decoded; what no writer makes keeps its backslash.
    #[test]
    fn escapes_real_writers_emit_are_decoded() {
        let v = |quoted: &str| read(&format!("k={quoted}"), "k").unwrap();
        // Prometheus 2 (go-kit/log through go-logfmt) on an error holding a terminal colour.
        assert_eq!(
            read(
                r#"ts=2026-11-28T10:00:00Z level=error err="scrape: Bad\u001b[31mThing""#,
                "err"
            )
            .as_deref(),
            Some("scrape: Bad\u{1b}[31mThing")
        );
        assert_eq!(
            v(r#""tab\tnl\ncr\rq\"bs\\sl\/ap\'""#),
            "tab\tnl\ncr\rq\"bs\\sl/ap'"
        );
        // strconv.Quote's forms.
        assert_eq!(v(r#""\x1b[0m\a\b\f\v""#), "\u{1b}[0m\u{7}\u{8}\u{c}\u{b}");
        assert_eq!(v(r#""\u00e9 \u2028 \U0001F600""#), "é \u{2028} 😀");
        assert_eq!(v(r#""\xc3\xa9 \xff""#), "é \u{fffd}");
        // Surrogate pairs as JSON writes them; one alone is U+FFFD.
        assert_eq!(v(r#""\ud83d\ude00""#), "😀");
        assert_eq!(v(r#""a\ud800b""#), "a\u{fffd}b");
        assert_eq!(v(r#""\udc00\ud800\ud800\n""#), "\u{fffd}\u{fffd}\u{fffd}\n");
        assert_eq!(v(r#""\ud83d\u0041""#), "\u{fffd}A");
        assert_eq!(v(r#""\U00110000""#), "\u{fffd}");
        // Not escapes: the backslash stays.
        assert_eq!(
            v(r#""C:\dir\q \x4 \u12 \U0041 \z""#),
            r"C:\dir\q \x4 \u12 \U0041 \z"
        );
        assert_eq!(v(r#""\\u0041""#), r"\u0041");
        // Unquoted values are taken as written.
        assert_eq!(v(r"a\u0041"), r"a\u0041");
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
        for line in [
            "=",
            "==",
            "=\"",
            "\"",
            "\\",
            "a=\"\\",
            "é=é",
            "  ",
            "a=b=c",
            r#"a="\u""#,
            r#"a="\ud800\u""#,
            r#"a="\x""#,
            r#"a="\U0010FFFF\uDBFF\uDFFF\xé""#,
        ] {
            parse(line, &mut pairs);
            for p in &pairs {
                let _ = value(line, &pairs, &line[p.key.0..p.key.1]);
            }
        }
    }
}
