//! Turning extracted text into numbers: plain numbers with thousands separators, bytes with
//! SI or IEC units, durations, percentages, booleans, timestamps; and value maps that turn
//! words like `OK`/`WARN`/`CRIT` into numbers or states. Pure functions.

use crate::config::Conversion;

/// Why text did not convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotConvertible;

/// Reads `text` as a number the way `how` says.
pub fn convert(text: &str, how: Conversion) -> Result<f64, NotConvertible> {
    let t = trimmed(text);
    match how {
        Conversion::Number => number(t),
        Conversion::Bytes => bytes(t),
        Conversion::Duration => duration(t),
        Conversion::Percent => number(t.strip_suffix('%').unwrap_or(t).trim()).map(|v| v / 100.0),
        Conversion::Bool => boolean(t),
        Conversion::NumberOrBool => number(t).or_else(|_| boolean(t)),
        Conversion::Timestamp => timestamp(t),
    }
    .and_then(|v| {
        if v.is_nan() {
            Err(NotConvertible)
        } else {
            Ok(v)
        }
    })
}

/// `text.trim()`, without its walk when the text begins and ends with a printable ASCII
/// character other than a space (`512`, `0.042`: what log lines carry), which is never
/// whitespace.
fn trimmed(text: &str) -> &str {
    let printable = |b: Option<&u8>| b.is_some_and(|b| (0x21..=0x7E).contains(b));
    let bytes = text.as_bytes();
    if printable(bytes.first()) && printable(bytes.last()) {
        text
    } else {
        text.trim()
    }
}

/// A plain number; `,` or `_` may separate thousands (`36,426,658`), only in groups of three.
/// A number too large for a double (`1e400`) does not convert; infinity spelled out does.
pub fn number(t: &str) -> Result<f64, NotConvertible> {
    if let Some(v) = short_decimal(t) {
        return Ok(v);
    }
    if let Ok(v) = t.parse::<f64>() {
        if v.is_infinite() && !t.to_ascii_lowercase().contains("inf") {
            return Err(NotConvertible);
        }
        return Ok(v);
    }
    for sep in [',', '_'] {
        if t.contains(sep) && grouped(t, sep) {
            return t.replace(sep, "").parse().map_err(|_| NotConvertible);
        }
    }
    Err(NotConvertible)
}

/// Powers of ten exact in an f64.
const EXACT_POWERS_OF_TEN: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// `t` read without the general float parser when it is a short plain decimal (`-`, digits, a
/// `.`, digits; at most 15 digits): the digits as an integer and the power of ten are both
/// exact in an f64, so one division rounds once, as the parser does (Clinger's fast path) —
/// the same value for the numbers log lines carry most (`512`, `0.042`). `None`: anything else.
fn short_decimal(t: &str) -> Option<f64> {
    let (negative, digits) = match t.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    // More than 15 digits and a point: declined without reading them.
    if digits.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    // Digits after the point, once one is seen.
    let mut fraction: Option<usize> = None;
    for (i, &b) in digits.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit < 10 {
            mantissa = mantissa * 10 + u64::from(digit);
        } else if b == b'.' && fraction.is_none() {
            fraction = Some(digits.len() - i - 1);
        } else {
            return None;
        }
    }
    let count = digits.len() - usize::from(fraction.is_some());
    if count == 0 || count > 15 {
        return None;
    }
    let v = mantissa as f64 / EXACT_POWERS_OF_TEN[fraction.unwrap_or(0)];
    Some(if negative { -v } else { v })
}

/// Whether the integer part of `t` is digits in groups of three separated by `sep`.
fn grouped(t: &str, sep: char) -> bool {
    let t = t.strip_prefix(['-', '+']).unwrap_or(t);
    let int = t.split('.').next().unwrap_or("");
    let mut groups = int.split(sep);
    let first = groups.next().unwrap_or("");
    (1..=3).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_digit())
        && groups.all(|g| g.len() == 3 && g.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits `1.5 GB` into (1.5, "GB").
fn split_unit(t: &str) -> Result<(f64, &str), NotConvertible> {
    let end = t
        .char_indices()
        .find(|(_, c)| {
            !(c.is_ascii_digit() || matches!(c, '.' | ',' | '_' | '-' | '+' | 'e' | 'E'))
        })
        .map_or(t.len(), |(i, _)| i);
    // `e` may start a unit ("EB"); retreat when what precedes is not a valid number.
    let (mut num, mut unit) = (t[..end].trim(), t[end..].trim());
    if number(num).is_err() && (num.ends_with('e') || num.ends_with('E')) {
        num = &t[..end - 1];
        unit = t[end - 1..].trim();
    }
    Ok((number(num.trim())?, unit))
}

fn bytes(t: &str) -> Result<f64, NotConvertible> {
    let (v, unit) = split_unit(t)?;
    let factor: f64 = match unit {
        "" | "B" | "b" | "bytes" | "byte" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "PB" => 1e15,
        "EB" => 1e18,
        "K" | "k" | "KiB" | "Ki" => 1024.0,
        "M" | "MiB" | "Mi" => 1024f64.powi(2),
        "G" | "GiB" | "Gi" => 1024f64.powi(3),
        "T" | "TiB" | "Ti" => 1024f64.powi(4),
        "P" | "PiB" | "Pi" => 1024f64.powi(5),
        _ => return Err(NotConvertible),
    };
    Ok(v * factor)
}

/// `v` of `unit` in seconds. Sub-second units divide (by an exact power of ten), so `42ms` is
/// the same double as `0.042` (multiplying by the inexact `1e-3` would not be).
fn in_seconds(v: f64, unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => v / 1e9,
        "us" | "µs" => v / 1e6,
        "ms" => v / 1e3,
        other => v * duration_unit(other)?,
    })
}

fn duration_unit(unit: &str) -> Option<f64> {
    Some(match unit {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        "w" | "week" | "weeks" => 604800.0,
        _ => return None,
    })
}

/// `250ms`, `1.5s`, `1h30m`, `3 days 4 hours`, `90` (seconds).
fn duration(t: &str) -> Result<f64, NotConvertible> {
    let mut rest = t.trim();
    if rest.is_empty() {
        return Err(NotConvertible);
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
            .map_or(rest.len(), |(i, _)| i);
        if num_len == 0 {
            return Err(NotConvertible);
        }
        let v: f64 = rest[..num_len].parse().map_err(|_| NotConvertible)?;
        rest = rest[num_len..].trim_start();
        let unit_len = rest
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(rest.len(), |(i, _)| i);
        total += in_seconds(v, &rest[..unit_len]).ok_or(NotConvertible)?;
        rest = rest[unit_len..].trim_start_matches([' ', ',']);
    }
    Ok(total)
}

fn boolean(t: &str) -> Result<f64, NotConvertible> {
    match t.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "up" | "ok" | "enabled" | "1" => Ok(1.0),
        "false" | "no" | "off" | "down" | "disabled" | "0" => Ok(0.0),
        _ => Err(NotConvertible),
    }
}

/// Unix seconds, or an RFC 3339 / ISO 8601 date-time (`2026-11-26T10:00:00Z`, with `T` or a
/// space, optional fraction, `Z` or `±HH:MM`; none means UTC) → Unix seconds.
fn timestamp(t: &str) -> Result<f64, NotConvertible> {
    if let Ok(v) = t.parse::<f64>() {
        return Ok(v);
    }
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Result<i64, NotConvertible> {
        let s = t.get(r).ok_or(NotConvertible)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(NotConvertible);
        }
        s.parse().map_err(|_| NotConvertible)
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(NotConvertible);
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(NotConvertible);
    }
    let mut rest = &t[19..];
    let mut fraction = 0.0;
    if let Some(r) = rest.strip_prefix(['.', ',']) {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        fraction = format!("0.{}", &r[..n])
            .parse()
            .map_err(|_| NotConvertible)?;
        rest = &r[n..];
    }
    let offset = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return Err(NotConvertible),
            };
            let hm = rest[1..].replace(':', "");
            // Digits only before slicing: `hm[..2]` inside a multi-byte character would panic
            // (found by fuzzing: "…-0 窃").
            if hm.len() != 4 || !hm.bytes().all(|c| c.is_ascii_digit()) {
                return Err(NotConvertible);
            }
            let h: i64 = hm[..2].parse().map_err(|_| NotConvertible)?;
            let m: i64 = hm[2..].parse().map_err(|_| NotConvertible)?;
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Ok((days * 86400 + hour * 3600 + minute * 60 + second - offset) as f64 + fraction)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// Text → text, before conversion: exact keys first, then `*` patterns (most literal text
/// first), then the default.
#[derive(Debug, Clone)]
pub struct ValueMap {
    exact: Vec<(String, String)>,
    patterns: Vec<(Vec<String>, String)>,
    default: Option<String>,
}

impl ValueMap {
    /// Builds a map from `key → value` entries and an optional default.
    pub fn new<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
        default: Option<&str>,
    ) -> ValueMap {
        let mut exact = Vec::new();
        let mut patterns = Vec::new();
        for (k, v) in entries {
            if k.contains('*') {
                patterns.push((
                    k.split('*').map(String::from).collect::<Vec<_>>(),
                    v.to_owned(),
                ));
            } else {
                exact.push((k.to_owned(), v.to_owned()));
            }
        }
        patterns.sort_by_key(|(parts, _): &(Vec<String>, String)| {
            std::cmp::Reverse(parts.iter().map(String::len).sum::<usize>())
        });
        ValueMap {
            exact,
            patterns,
            default: default.map(str::to_owned),
        }
    }

    /// What `text` maps to (trimmed first), or `None`.
    pub fn lookup(&self, text: &str) -> Option<&str> {
        let text = text.trim();
        if let Some((_, v)) = self.exact.iter().find(|(k, _)| k == text) {
            return Some(v);
        }
        if let Some((_, v)) = self
            .patterns
            .iter()
            .find(|(parts, _)| wildcard_match(parts, text))
        {
            return Some(v);
        }
        self.default.as_deref()
    }
}

/// Whether `text` matches a pattern split at its `*`s.
fn wildcard_match(parts: &[String], text: &str) -> bool {
    let (first, rest) = (&parts[0], &parts[1..]);
    let Some(mut remaining) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    for (i, part) in rest.iter().enumerate() {
        if i == rest.len() - 1 {
            return remaining.len() >= part.len() && remaining.ends_with(part.as_str());
        }
        match remaining.find(part.as_str()) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut past `trim` answers as `trim` for every text: ends of every kind (ASCII
    /// whitespace, the vertical tab, Unicode spaces, controls, multibyte text), short and long.
    #[test]
    fn trimmed_is_trim() {
        let ends = [
            "", " ", "\t", "\n", "\r", "\x0B", "\x0C", "\u{85}", "\u{A0}", "\u{2003}", "\u{3000}",
            "\x7F", "\x01", "a", "7", "-", ".", "~", "!", "é", "字",
        ];
        for a in ends {
            for mid in ["", "1", "0.042", "1 2", " ", "é"] {
                for b in ends {
                    let text = format!("{a}{mid}{b}");
                    assert_eq!(trimmed(&text), text.trim(), "{text:?}");
                }
            }
        }
    }

    /// The short-decimal path gives the float parser's value, bit for bit, and declines what
    /// is not a short plain decimal.
    #[test]
    fn short_decimals_read_as_the_float_parser_reads_them() {
        let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut taken = 0;
        for _ in 0..200_000 {
            let len = (next() % 17) as usize;
            let mut t: String = (0..len)
                .map(|_| (b'0' + (next() % 10) as u8) as char)
                .collect();
            if len > 0 && next() % 2 == 0 {
                t.insert((next() % (len as u64 + 1)) as usize, '.');
            }
            if next() % 4 == 0 {
                t.insert(0, '-');
            }
            let parsed = t.parse::<f64>().ok();
            match short_decimal(&t) {
                Some(v) => {
                    taken += 1;
                    assert_eq!(Some(v.to_bits()), parsed.map(f64::to_bits), "{t:?}");
                }
                None => assert!(
                    parsed.is_none() || t.bytes().filter(u8::is_ascii_digit).count() > 15,
                    "{t:?} declined"
                ),
            }
        }
        assert!(taken > 100_000, "only {taken} taken");
        for other in [
            "",
            "-",
            ".",
            "-.",
            "1e3",
            "+5",
            "1,000",
            " 1",
            "1 ",
            "0x10",
            "1..2",
            "inf",
            "1.2.3",
            "--5",
            "5-",
            "1234567890123456",
            "12345678901234.56",
            "é",
        ] {
            assert_eq!(short_decimal(other), None, "{other:?}");
        }
        assert_eq!(number("-0").map(f64::to_bits), Ok((-0.0f64).to_bits()));
        assert_eq!(number("1."), Ok(1.0));
        assert_eq!(number(".5"), Ok(0.5));
        // Fifteen digits and a point: the longest text taken.
        assert_eq!(short_decimal("123456789012.345"), Some(123456789012.345));
        assert_eq!(short_decimal("-1234567890123.45"), Some(-1234567890123.45));
    }

    #[test]
    fn numbers_with_thousands_separators() {
        assert_eq!(number("36,426,658"), Ok(36426658.0));
        assert_eq!(number("1_000.5"), Ok(1000.5));
        assert_eq!(number("-3e2"), Ok(-300.0));
        assert_eq!(number("1,5"), Err(NotConvertible));
        assert_eq!(number("12,34,567"), Err(NotConvertible));
        assert_eq!(number("abc"), Err(NotConvertible));
        // Too large for a double: not a number we can report. Infinity spelled out is one.
        assert_eq!(number("1e400"), Err(NotConvertible));
        assert_eq!(number("-Infinity"), Ok(f64::NEG_INFINITY));
    }

    #[test]
    fn bytes_durations_percent_bool() {
        assert_eq!(convert("1.5 GB", Conversion::Bytes), Ok(1.5e9));
        assert_eq!(
            convert("2GiB", Conversion::Bytes),
            Ok(2.0 * 1024f64.powi(3))
        );
        assert_eq!(convert("512K", Conversion::Bytes), Ok(524288.0));
        assert_eq!(convert("1,024 B", Conversion::Bytes), Ok(1024.0));
        assert_eq!(convert("3 EB", Conversion::Bytes), Ok(3e18));
        assert!(convert("12 parsecs", Conversion::Bytes).is_err());
        assert_eq!(convert("250ms", Conversion::Duration), Ok(0.25));
        assert_eq!(convert("1h30m", Conversion::Duration), Ok(5400.0));
        assert_eq!(
            convert("2 days 4 hours", Conversion::Duration),
            Ok(187200.0)
        );
        assert_eq!(convert("90", Conversion::Duration), Ok(90.0));
        // Sub-second units give the double the decimal would (examples compare exactly).
        assert_eq!(convert("1203us", Conversion::Duration), Ok(0.001203));
        assert_eq!(convert("1203µs", Conversion::Duration), Ok(0.001203));
        assert_eq!(convert("42ms", Conversion::Duration), Ok(0.042));
        assert_eq!(convert("7ns", Conversion::Duration), Ok(0.000000007));
        assert!(convert("soon", Conversion::Duration).is_err());
        assert_eq!(convert("93 %", Conversion::Percent), Ok(0.93));
        assert_eq!(convert("Up", Conversion::Bool), Ok(1.0));
        assert_eq!(convert("off", Conversion::Bool), Ok(0.0));
        assert!(convert("maybe", Conversion::Bool).is_err());
        assert_eq!(convert("1,234", Conversion::NumberOrBool), Ok(1234.0));
        assert_eq!(convert("true", Conversion::NumberOrBool), Ok(1.0));
        assert_eq!(convert("false", Conversion::NumberOrBool), Ok(0.0));
        assert!(convert("maybe", Conversion::NumberOrBool).is_err());
    }

    #[test]
    fn timestamps_to_unix_seconds() {
        assert_eq!(
            convert("2026-11-26T10:00:00Z", Conversion::Timestamp),
            Ok(1795687200.0)
        );
        assert_eq!(
            convert("2026-11-26 11:00:00+01:00", Conversion::Timestamp),
            Ok(1795687200.0)
        );
        assert_eq!(
            convert("2026-11-26T10:00:00.5Z", Conversion::Timestamp),
            Ok(1795687200.5)
        );
        assert_eq!(
            convert("1970-01-01T00:00:00Z", Conversion::Timestamp),
            Ok(0.0)
        );
        assert_eq!(
            convert("1795687200", Conversion::Timestamp),
            Ok(1795687200.0)
        );
        assert!(convert("26/11/2026", Conversion::Timestamp).is_err());
        // Found by fuzzing: a multi-byte character where the offset's digits go panicked.
        for odd in [
            "2027-11-26T10:08:00- 窃",
            "2027-11-26T10:08:00+窃0",
            "2027-11-26T10:08:00+0é",
            "2027-11-26T10:08:00+-100",
        ] {
            assert!(convert(odd, Conversion::Timestamp).is_err(), "{odd}");
        }
    }

    #[test]
    fn maps_prefer_exact_then_specific_patterns_then_default() {
        let m = ValueMap::new(
            [
                ("UP", "up"),
                ("UP *", "degraded"),
                ("MAINT*", "maintenance"),
                ("*DOWN*", "down"),
            ],
            Some("unknown"),
        );
        assert_eq!(m.lookup("UP"), Some("up"));
        assert_eq!(m.lookup("UP 1/3"), Some("degraded"));
        assert_eq!(m.lookup(" MAINT (via x) "), Some("maintenance"));
        assert_eq!(m.lookup("NOLB DOWN 2/2"), Some("down"));
        assert_eq!(m.lookup("weird"), Some("unknown"));
        let strict = ValueMap::new([("OK", "0")], None);
        assert_eq!(strict.lookup("WARN"), None);
    }
}
