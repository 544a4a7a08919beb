//! What a step of a socket conversation sends: text with escapes (`\r\n`, `\xHH` for any
//! byte) and `${name}` references to secrets read from files.
//!
//! A request is parsed once, at build, into literal bytes and secret references; the secrets
//! are read on every conversation (a rotated password file takes effect) and their values are
//! only ever written to the socket: [`Secrets::redact`] takes them out of any message.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Turns the escapes `\\`, `\r`, `\n`, `\t`, `\0`, `\e` and `\xHH` of `text` into bytes
/// (YAML's double-quoted strings have already turned theirs; this makes plain and
/// single-quoted scalars work the same).
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes().enumerate();
    while let Some((at, b)) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        let escaped = match bytes.next() {
            Some((_, b'\\')) => b'\\',
            Some((_, b'r')) => b'\r',
            Some((_, b'n')) => b'\n',
            Some((_, b't')) => b'\t',
            Some((_, b'0')) => 0,
            Some((_, b'e')) => 0x1b,
            Some((_, b'x')) => {
                let hex: Option<u8> = (|| {
                    let high = (bytes.next()?.1 as char).to_digit(16)?;
                    let low = (bytes.next()?.1 as char).to_digit(16)?;
                    Some((high * 16 + low) as u8)
                })();
                hex.ok_or_else(|| {
                    format!("\\x at byte {at} needs two hex digits (\\x00 to \\xff)")
                })?
            }
            Some((_, other)) => {
                return Err(format!(
                "unknown escape \\{} at byte {at}; the escapes are \\\\ \\r \\n \\t \\0 \\e \\xHH",
                other as char
            ))
            }
            None => return Err("a lone \\ at the end; write \\\\ for a backslash".into()),
        };
        out.push(escaped);
    }
    Ok(out)
}

/// One piece of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Bytes(Vec<u8>),
    Secret(String),
}

/// A step's request, parsed: literal bytes and secret references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pieces: Vec<Piece>,
}

impl Request {
    /// Parses `text`: escapes are turned into bytes, `${name}` is the secret `name` (which
    /// must be one of `declared`); any other `$` is itself.
    pub fn parse<'a>(
        text: &str,
        declared: impl IntoIterator<Item = &'a String> + Clone,
    ) -> Result<Request, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(at) = rest.find("${") {
            let Some(len) = rest[at + 2..].find('}') else {
                break;
            };
            let name = &rest[at + 2..at + 2 + len];
            if !declared.clone().into_iter().any(|d| d == name) {
                let known: Vec<&String> = declared.clone().into_iter().collect();
                return Err(format!(
                    "${{{name}}} is not a secret of this source (declared under `secrets:`: {known:?})"
                ));
            }
            pieces.push(Piece::Bytes(unescape(&rest[..at])?));
            pieces.push(Piece::Secret(name.to_owned()));
            rest = &rest[at + 3 + len..];
        }
        pieces.push(Piece::Bytes(unescape(rest)?));
        pieces.retain(|p| !matches!(p, Piece::Bytes(b) if b.is_empty()));
        Ok(Request { pieces })
    }

    /// The bytes to send, with the secrets' current values.
    pub fn render(&self, secrets: &SecretValues) -> Vec<u8> {
        let mut out = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Secret(name) => {
                    if let Some(value) = secrets.get(name) {
                        out.extend_from_slice(value.as_bytes());
                    }
                }
            }
        }
        out
    }

    /// The request as it may be shown: secrets as `${name}`, bytes escaped.
    pub fn shown(&self) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Bytes(b) => b.escape_ascii().to_string(),
                Piece::Secret(name) => format!("${{{name}}}"),
            })
            .collect()
    }
}

/// The secret files of a source, by name.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    files: BTreeMap<String, PathBuf>,
}

/// Secret values read for one conversation.
#[derive(Debug, Default)]
pub struct SecretValues {
    values: BTreeMap<String, String>,
}

impl Secrets {
    /// The secrets `files` names (already resolved against the config's directory).
    pub fn new(files: BTreeMap<String, PathBuf>) -> Secrets {
        Secrets { files }
    }

    /// Reads every secret now (a trailing newline is not part of it).
    pub fn read(&self) -> Result<SecretValues, crate::source::fetch::FetchError> {
        let mut values = BTreeMap::new();
        for (name, path) in &self.files {
            values.insert(name.clone(), crate::source::fetch::read_secret(path)?);
        }
        Ok(SecretValues { values })
    }
}

impl SecretValues {
    fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The start of a reply for a message ([`framing::shown`](super::framing::shown)), every
    /// secret value in it replaced by `***` before it is cut: a secret crossing the cut
    /// leaves no part of itself.
    pub fn shown(&self, reply: &[u8]) -> String {
        let mut line = super::framing::first_line(reply, usize::MAX).to_vec();
        let mut values: Vec<&String> = self.values.values().filter(|v| !v.is_empty()).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values {
            line = replace_bytes(&line, value.as_bytes(), b"***");
        }
        super::framing::shown(&line)
    }

    /// `text` with every secret value replaced by `***`, longest first.
    pub fn redact(&self, mut text: String) -> String {
        let mut values: Vec<&String> = self.values.values().filter(|v| !v.is_empty()).collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        for value in values {
            text = text.replace(value.as_str(), "***");
            // Also as an error message shows bytes: escaped.
            let escaped = value.as_bytes().escape_ascii().to_string();
            if escaped != *value {
                text = text.replace(&escaped, "***");
            }
        }
        text
    }
}

/// `haystack` with every `needle` (not empty) replaced by `with`.
fn replace_bytes(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_bytes_and_bad_ones_are_explained() {
        assert_eq!(unescape(r"stats\r\n").unwrap(), b"stats\r\n");
        assert_eq!(
            unescape(r"\x00\xfF\\\t\e\0").unwrap(),
            b"\x00\xff\\\t\x1b\x00"
        );
        // Already-unescaped text (from a YAML double-quoted string) is kept.
        assert_eq!(unescape("INFO\r\n").unwrap(), b"INFO\r\n");
        assert!(unescape(r"\q").unwrap_err().contains("unknown escape \\q"));
        assert!(unescape(r"\x4").unwrap_err().contains("two hex digits"));
        assert!(unescape("a\\").unwrap_err().contains("lone"));
    }

    #[test]
    fn a_secret_cut_by_a_shown_reply_is_not_shown_in_part() {
        let values = SecretValues {
            values: BTreeMap::from([("pw".to_owned(), "hunter2-long-secret".to_owned())]),
        };
        // A reply whose 120-byte cut falls inside the secret: shown plainly, a part shows.
        let reply = format!("-ERR args: '{}' hunter2-long-secret", "x".repeat(95));
        let plain = crate::source::socket::framing::shown(reply.as_bytes());
        assert!(
            plain.contains("hunter2-lo"),
            "the cut must fall inside: {plain}"
        );
        // Redacted before the cut: nothing of it, and what follows the secret moves up.
        let shown = values.shown(reply.as_bytes());
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.ends_with("' ***\""), "{shown}");
        // Escaped bytes in a secret are matched as bytes, before escaping.
        let values = SecretValues {
            values: BTreeMap::from([("pw".to_owned(), "p\u{1}w".to_owned())]),
        };
        assert_eq!(
            values.shown(b"-ERR p\x01w p\x01w\r\nmore"),
            "\"-ERR *** ***\""
        );
        // A text that only starts like a secret is left alone.
        assert_eq!(values.shown(b"-ERR p and p\x01"), "\"-ERR p and p\\x01\"");
    }

    #[test]
    fn secrets_are_referenced_by_name_and_other_dollars_are_text() {
        let declared = ["password".to_owned()];
        let request = Request::parse(r"AUTH ${password}\r\n$4 ${x", &declared).unwrap();
        let values = SecretValues {
            values: [("password".to_owned(), "s3cret".to_owned())].into(),
        };
        assert_eq!(request.render(&values), b"AUTH s3cret\r\n$4 ${x");
        assert_eq!(request.shown(), r"AUTH ${password}\r\n$4 ${x");
        let err = Request::parse("AUTH ${pasword}", &declared).unwrap_err();
        assert!(err.contains("${pasword} is not a secret"), "{err}");
    }

    #[test]
    fn secret_values_are_taken_out_of_messages() {
        let values = SecretValues {
            values: [
                ("a".to_owned(), "pw".to_owned()),
                ("b".to_owned(), "long\u{1}pw".to_owned()),
            ]
            .into(),
        };
        assert_eq!(
            values.redact("got pw and long\\x01pw and long\u{1}pw".into()),
            "got *** and *** and ***"
        );
    }
}
