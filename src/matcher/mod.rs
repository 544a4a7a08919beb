//! Matching one rule's regex against a line and reading its captures.
//!
//! A [`Matcher`] holds the regex crate's compiled regex and, when the pattern has the
//! deterministic shape most log regexes have, a [`linear::LinearPattern`] that finds the same
//! match in one memchr-driven pass. Callers see one interface either way.

pub mod linear;

use regex::{CaptureLocations, Regex};

use linear::LinearPattern;

/// A compiled rule regex with reusable capture storage (no allocation per match).
pub struct Matcher {
    regex: Regex,
    linear: Option<LinearPattern>,
    locations: CaptureLocations,
    /// Capture spans of the last match, by group index; `usize::MAX` for a group that did not
    /// take part.
    slots: Vec<(usize, usize)>,
}

const UNSET: (usize, usize) = (usize::MAX, usize::MAX);

impl Matcher {
    /// Compiles `pattern` with the regex crate's syntax and defaults (within
    /// [`crate::extract::limits`]).
    pub fn new(pattern: &str) -> Result<Matcher, String> {
        let regex = crate::extract::limits::regex(pattern)?;
        let groups = regex.captures_len();
        let linear = regex_syntax::ParserBuilder::new()
            .build()
            .parse(pattern)
            .ok()
            .and_then(|hir| LinearPattern::compile(&hir, groups));
        Ok(Matcher {
            locations: regex.capture_locations(),
            regex,
            linear,
            slots: vec![UNSET; groups],
        })
    }

    /// The regex crate's view of the pattern (capture names, for resolving fields).
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// Whether the fast path is in use for ASCII lines.
    pub fn is_linear(&self) -> bool {
        self.linear.is_some()
    }

    /// Matches `line`; afterwards [`Matcher::group`] gives the captures. `ascii` says whether
    /// the line is all ASCII (known once per line, not once per rule).
    pub fn matches(&mut self, line: &str, ascii: bool) -> bool {
        if let Some(linear) = &self.linear {
            if ascii {
                return linear.find(line.as_bytes(), &mut self.slots);
            }
        }
        if self.slots.len() == 1 {
            // No group to read: whether it matches is all (the regex crate's DFA alone, no
            // capture engine). Group 0 is not a field.
            return self.regex.is_match(line);
        }
        if self
            .regex
            .captures_read(&mut self.locations, line)
            .is_none()
        {
            return false;
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            *slot = self.locations.get(i).unwrap_or(UNSET);
        }
        true
    }

    /// The span of group `index` in the last matched line, if it took part.
    pub fn group(&self, index: usize) -> Option<(usize, usize)> {
        self.slots.get(index).copied().filter(|s| *s != UNSET)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns of the deterministic shape, and the alphabet their haystacks are drawn from.
    const LINEAR: &[&str] = &[
        r#"^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>GET|POST|PUT|DELETE|PATCH) \S+ [^"]*" (?P<status>\d{3}) "#,
        r"^\w{3} +\d+ [\d:]+ \S+ (?P<program>[\w-]+)\[\d+\]: ",
        r"x(?P<level>INFO|WARN|ERROR|DEBUG) ",
        r"a(?:b|cd|ce)(?P<n>\d+)",
        r"k +(?P<v>x-*)y",
        r#""(?P<method>[A-Z]+) \S+ [^"]*" (?P<status>\d{3}) (?P<bytes>\d+) "[^"]*" "[^"]*" (?P<seconds>[\d.]+)$"#,
        r#"^\S+ \S+ \S+ \[[^\]]+\] "(?P<m>[A-Z]+) "#,
        r"x(?P<n>\d{2,3})",
        r"x(?P<n>\d*?)",
        r"x(?P<n>\d+?)y",
        r"(?i)^get (?P<a>[a-z]+)",
        r"^(?P<all>a(?P<inner>\d+)b)$",
        r"^$",
        r#"key=(?P<k>\S+)"#,
        r"a\d{3}",
        r"a[0-9]{0,2}$",
    ];

    /// Patterns that must not take the fast path.
    const OTHER: &[&str] = &[
        r"(GET|POST) x",
        r"x(?P<a>a|ab)",
        r"x(?P<a>[a-z]+|\d+)",
        r"x(?P<a>a|)y",
        r"x(?P<l>WARN|WARNING|E|ERROR) ",
        r"a.*b",
        r"\bword",
        r"\d+x",
        r"a\S+\d",
        r"(?m)^a",
        r"(ab)+",
        r"a\s*\s",
        r"(?i)get",
    ];

    /// A small deterministic PRNG (xorshift), so the test needs no dependency and repeats.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn shapes_are_recognised() {
        for p in LINEAR {
            assert!(Matcher::new(p).unwrap().is_linear(), "{p} should be linear");
        }
        for p in OTHER {
            assert!(
                !Matcher::new(p).unwrap().is_linear(),
                "{p} should use the regex crate"
            );
        }
    }

    #[test]
    fn the_fast_path_agrees_with_the_regex_crate_capture_for_capture() {
        let alphabet: &[u8] = b"aAxyb GETget\"\"  0123456789.-[]=k/\tPOSTINFWRcde:";
        let mut rng = Rng(0x9E3779B97F4A7C15);
        let structured = [
            r#"1.2.3.4 - - [26/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 12 "-" "ua" 0.5"#,
            r#"x "POST / HTTP/1.0" 404 0 "r" "u a" 12.25"#,
            "a123b",
            "key=v x",
            r#"10.0.0.1 - - [28/Nov/2026:10:00:00 +0000] "PATCH /x HTTP/1.1" 204 0"#,
            "Nov 28 10:37:12 web01 sshd[4242]: Accepted",
            "Nov  8 10:37:12 web01 my-app[1]: x",
            "xWARN xINFO xERROR xDEBUG xE ",
            "acd12 ace3 ab9",
            "k  x--y",
        ];
        for pattern in LINEAR {
            let mut fast = Matcher::new(pattern).unwrap();
            let regex = Regex::new(pattern).unwrap();
            let mut locs = regex.capture_locations();
            for i in 0..40_000 {
                let line: String = if i < structured.len() {
                    structured[i].to_owned()
                } else {
                    let len = (rng.next() % 48) as usize;
                    (0..len)
                        .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize] as char)
                        .collect()
                };
                let expected = regex.captures_read(&mut locs, &line).is_some();
                assert_eq!(
                    fast.matches(&line, line.is_ascii()),
                    expected,
                    "{pattern} on {line:?}"
                );
                if expected {
                    for g in 0..regex.captures_len() {
                        assert_eq!(
                            fast.group(g),
                            locs.get(g),
                            "{pattern} group {g} on {line:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn non_ascii_lines_use_the_regex_crate() {
        let mut m = Matcher::new(r"user=(?P<u>\S+)").unwrap();
        assert!(m.is_linear());
        assert!(m.matches("user=zoë done", false));
        assert_eq!(m.group(1), Some((5, 9)));
    }
}
