//! The Prometheus text format (0.0.4): the writing primitives every family uses (headers,
//! samples, values, escaping) and the joining of families' chunks in name order. It depends on
//! nothing else in the crate; putting one exposition together from every family is
//! [`crate::render`]'s.
//!
//! The bytes are those of the prometheus crate's text encoder (tests compare them), except
//! that infinities are written `+Inf`/`-Inf` as the format specifies (the crate writes `inf`).

use std::io::Write;

/// The Content-Type of the Prometheus text format, exactly.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family's text, keyed by its name for ordering.
pub type Chunk = (String, Vec<u8>);

/// Appends `# HELP` and `# TYPE` lines.
pub fn header(text: &mut Vec<u8>, name: &str, help: &str, kind: &str) {
    text.extend_from_slice(b"# HELP ");
    text.extend_from_slice(name.as_bytes());
    text.push(b' ');
    escape(text, help.as_bytes(), false);
    text.extend_from_slice(b"\n# TYPE ");
    text.extend_from_slice(name.as_bytes());
    text.push(b' ');
    text.extend_from_slice(kind.as_bytes());
    text.push(b'\n');
}

/// Appends one sample line: `name{labels[,le]} value`. Label values are escaped here.
pub fn sample(
    text: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: &[(&str, &[u8])],
    le: Option<&str>,
    value: f64,
) {
    text.extend_from_slice(name.as_bytes());
    text.extend_from_slice(suffix.as_bytes());
    if !labels.is_empty() || le.is_some() {
        let mut separator = b'{';
        for (n, v) in labels {
            text.push(separator);
            text.extend_from_slice(n.as_bytes());
            text.extend_from_slice(b"=\"");
            escape(text, v, true);
            text.push(b'"');
            separator = b',';
        }
        if let Some(le) = le {
            text.push(separator);
            text.extend_from_slice(b"le=\"");
            text.extend_from_slice(le.as_bytes());
            text.push(b'"');
        }
        text.push(b'}');
    }
    text.push(b' ');
    write_value(text, value);
    text.push(b'\n');
}

/// A sample value as the text format reads it back exactly.
pub fn write_value(text: &mut Vec<u8>, value: f64) {
    if value.is_infinite() {
        text.extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        let _ = write!(text, "{value}");
    }
}

/// Escapes `\\` and newlines (and `"` in label values) as the text format requires.
pub fn escape(text: &mut Vec<u8>, value: &[u8], quotes: bool) {
    let needs = if quotes {
        memchr::memchr3(b'\\', b'\n', b'"', value).is_some()
    } else {
        memchr::memchr2(b'\\', b'\n', value).is_some()
    };
    if !needs {
        text.extend_from_slice(value);
        return;
    }
    for &c in value {
        match c {
            b'\\' => text.extend_from_slice(b"\\\\"),
            b'\n' => text.extend_from_slice(b"\\n"),
            b'"' if quotes => text.extend_from_slice(b"\\\""),
            _ => text.push(c),
        }
    }
}

/// Joins chunks in name order, leaving out those `include` refuses.
pub fn concat(mut chunks: Vec<Chunk>, include: impl Fn(&str) -> bool) -> Vec<u8> {
    chunks.retain(|(name, _)| include(name));
    chunks.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(chunks.iter().map(|c| c.1.len()).sum());
    for (_, text) in chunks {
        out.extend_from_slice(&text);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_values_are_written_as_the_format_says() {
        let mut t = Vec::new();
        for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e21, -0.5, 3.0] {
            write_value(&mut t, v);
            t.push(b' ');
        }
        assert_eq!(
            String::from_utf8(t).unwrap(),
            "+Inf -Inf NaN 1000000000000000000000 -0.5 3 "
        );
    }
}
