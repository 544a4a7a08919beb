//! Matching one rule's regex against a line and reading its captures.
//!
//! A [`Matcher`] holds the regex crate's compiled regex and, when the pattern has the shape
//! most log regexes have, a [`fast::FastPattern`] that finds the same match with memchr-driven
//! steps and little backtracking (and hands a line back when it would cost too much). Before
//! either, for an unanchored pattern the fast path does not find by a byte or a literal, a
//! [`Required`] prefilter: when every match must contain one of a few literals
//! (`Exception|Error`, `Out of memory: Killed process`), a line without any of them is refused
//! with a SIMD substring search — in a log where most lines are for other rules, that is most
//! lines. A fast pattern that finds its own start byte gets the same prefilter while it refuses
//! enough lines to pay for itself ([`Sparing`]: a `"` is at many places of a JSON line, and
//! each is an attempt), and an anchored one refuses a line by its first byte before any
//! attempt. Callers see one interface either way. Across a source's rules, [`set::Candidates`]
//! first tells in one pass which rules can match a line ([`literals::LiteralGate`]: their
//! literals, one SIMD search for all); a rule whose literal it saw is matched without its own
//! prefilter ([`Matcher::matches_with_literal_seen`]).

pub mod fast;
pub mod literals;
pub mod set;

use memchr::memmem;
use regex::{CaptureLocations, Regex};
use regex_syntax::hir::literal::Extractor;
use regex_syntax::hir::{Hir, HirKind};

use fast::FastPattern;

/// Literals one of which every match contains (each a finder, built once).
#[derive(Clone)]
pub struct Required {
    finders: Vec<memmem::Finder<'static>>,
}

/// Most literals a prefilter checks; past it, the regex is on its own.
const MAX_REQUIRED: usize = 8;
/// Shortest literal worth a search of its own (shorter ones are in too many lines).
const MIN_REQUIRED_LEN: usize = 3;

impl Required {
    /// The most selective literal set of `hir`'s top-level parts: for each part of the
    /// pattern's concatenation, the prefixes every match of that part starts with (the
    /// regex-syntax extractor); kept when finite, at most [`MAX_REQUIRED`], each at least
    /// [`MIN_REQUIRED_LEN`] bytes. The longest shortest-literal wins.
    fn of(hir: &Hir) -> Option<Required> {
        // A pattern anchored at the start fails at its first byte. (One with a literal prefix
        // still gains: an inner literal is often rarer than the prefix, measured.)
        if hir
            .properties()
            .look_set_prefix()
            .contains(regex_syntax::hir::Look::Start)
        {
            return None;
        }
        let mut parts = vec![hir];
        collect_parts(hir, &mut parts);
        let mut best: Option<Vec<Vec<u8>>> = None;
        for part in parts {
            let seq = Extractor::new().extract(part);
            let Some(literals) = seq.literals() else {
                continue;
            };
            if literals.is_empty() || literals.len() > MAX_REQUIRED {
                continue;
            }
            let shortest = literals
                .iter()
                .map(|l| l.as_bytes().len())
                .min()
                .unwrap_or(0);
            if shortest < MIN_REQUIRED_LEN {
                continue;
            }
            let best_shortest = best
                .as_ref()
                .map_or(0, |b| b.iter().map(Vec::len).min().unwrap_or(0));
            if shortest > best_shortest {
                best = Some(literals.iter().map(|l| l.as_bytes().to_vec()).collect());
            }
        }
        let finders = best?
            .into_iter()
            .map(|l| memmem::Finder::new(&l).into_owned())
            .collect();
        Some(Required { finders })
    }

    /// Whether the prefilter searches for `literal` alone.
    fn is_only(&self, literal: Option<&[u8]>) -> bool {
        matches!(&self.finders[..], [f] if Some(f.needle()) == literal)
    }

    /// Whether `line` contains one of the literals (else it cannot match).
    fn admits(&self, line: &[u8]) -> bool {
        self.finders.iter().any(|f| f.find(line).is_some())
    }
}

/// The parts of a concatenation (through capture groups), each of which every match covers.
fn collect_parts<'h>(hir: &'h Hir, out: &mut Vec<&'h Hir>) {
    match hir.kind() {
        HirKind::Concat(items) => {
            for item in items {
                collect_parts(item, out);
            }
        }
        HirKind::Capture(c) => collect_parts(&c.sub, out),
        _ => out.push(hir),
    }
}

/// Whether `line` is all ASCII, the `ascii` argument of [`Matcher::matches`]: eight bytes
/// a step, or-ed together without a branch per step (the standard library's check stops at
/// the first byte above 127, which costs more on lines that have none).
pub fn is_ascii(line: &str) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = line.as_bytes().chunks_exact(8);
    let mut seen = 0u64;
    for chunk in &mut chunks {
        // Always eight bytes; the fallback only keeps the code free of a panic.
        seen |= u64::from_ne_bytes(chunk.try_into().unwrap_or([0x80; 8]));
    }
    let tail = chunks.remainder().iter().fold(0u8, |acc, b| acc | b);
    seen & HIGH == 0 && tail < 0x80
}

/// A compiled rule regex with reusable capture storage (no allocation per match). A clone
/// matches on another thread with storage of its own (the compiled regex is shared).
#[derive(Clone)]
pub struct Matcher {
    regex: Regex,
    required: Option<Required>,
    /// When the prefilter is asked, for a pattern that could go without it (`None`: always).
    sparing: Option<Sparing>,
    fast: Option<FastPattern>,
    locations: CaptureLocations,
    /// The pattern matches every line and has no group to read (`''`, `.*`, `x?`): no
    /// search at all (the regex crate's DFA still walks a state or two per call).
    every_line: bool,
    /// Capture spans of the last match, by group index; `usize::MAX` for a group that did not
    /// take part.
    slots: Vec<(usize, usize)>,
}

/// Lines over which an optional prefilter's share of refusals is judged.
const SPARING_WINDOW: u32 = 1024;

/// Lines an optional prefilter is left out for after a window in which it refused fewer than
/// an eighth of them (its search then costs more than the attempts it spares).
const SPARING_PAUSE: u32 = 64 * 1024;

/// For a pattern whose fast path finds its own starts, the prefilter is optional: skipping it
/// changes no answer, only the cost. It is asked while it refuses at least an eighth of the
/// lines of a window (an access-log rule's ` HTTP/` is in every line of an access log: there
/// it is only an extra search); otherwise left out for [`SPARING_PAUSE`] lines, then tried
/// again (the log may change).
#[derive(Clone, Debug)]
struct Sparing {
    /// Lines left in the current window.
    left: u32,
    refused: u32,
    paused: u32,
}

impl Sparing {
    fn new() -> Sparing {
        Sparing {
            left: SPARING_WINDOW,
            refused: 0,
            paused: 0,
        }
    }

    /// At the end of a window: whether to leave the prefilter out for a while.
    #[cold]
    fn judge(&mut self) {
        if self.refused < SPARING_WINDOW / 8 {
            self.paused = SPARING_PAUSE;
        }
        self.left = SPARING_WINDOW;
        self.refused = 0;
    }
}

/// The span of a group that did not take part in the match.
pub const UNSET: (usize, usize) = (usize::MAX, usize::MAX);

impl Matcher {
    /// Compiles `pattern` with the regex crate's syntax and defaults (within
    /// [`crate::extract::limits`]).
    pub fn new(pattern: &str) -> Result<Matcher, String> {
        let regex = crate::extract::limits::regex(pattern)?;
        let groups = regex.captures_len();
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(pattern)
            .ok();
        // Without groups only whether it matches is asked, which the regex crate's DFA answers
        // in one pass; the fast path still wins when it fails at the first byte (anchored).
        let fast = hir
            .as_ref()
            .and_then(|hir| FastPattern::compile(hir, groups))
            .filter(|fast| groups > 1 || fast.is_anchored());
        // A required literal refuses most lines before the regex crate's search runs. The
        // fast path finds its first byte or leading literal with memchr/memmem itself (a
        // prefilter of that same literal would be a second search: none), and its attempts
        // fail within a few bytes; but a start found at many places of a line (`"` in JSON,
        // in a quoted field) costs an attempt at each, and a rarer literal further in refuses
        // more lines: the prefilter's one search is cheaper then. There it is judged by what
        // it refuses ([`Sparing`]); anchored patterns get none.
        let required = hir.as_ref().and_then(Required::of).filter(|r| {
            !fast
                .as_ref()
                .is_some_and(|f| r.is_only(f.leading_literal()))
        });
        // Only a prefilter there is can be spared.
        let sparing = (required.is_some() && fast.as_ref().is_some_and(FastPattern::finds_starts))
            .then(Sparing::new);
        // Without look-around assertions, a pattern whose shortest match is empty matches the
        // empty string at the start of any line.
        let every_line = groups == 1
            && hir.as_ref().is_some_and(|h| {
                h.properties().minimum_len() == Some(0) && h.properties().look_set().is_empty()
            });
        Ok(Matcher {
            required,
            sparing,
            every_line,
            locations: regex.capture_locations(),
            regex,
            fast,
            slots: vec![UNSET; groups],
        })
    }

    /// The regex crate's view of the pattern (capture names, for resolving fields).
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// Whether the fast path is in use.
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// The literals one of which every match contains, as this matcher searches a line for
    /// them (its prefilter's, or else its fast path's leading literal): what a source's
    /// [`literals::LiteralGate`] can search for, for all rules at once. `None` for a pattern that
    /// matches every line, or one with no such literal.
    pub fn gate_literals(&self) -> Option<Vec<&[u8]>> {
        if self.every_line {
            return None;
        }
        if let Some(required) = &self.required {
            return Some(required.finders.iter().map(|f| f.needle()).collect());
        }
        let leading = self.fast.as_ref()?.leading_literal()?;
        Some(vec![leading])
    }

    /// Matches `line`; afterwards [`Matcher::group`] gives the captures. `ascii` says whether
    /// the line is all ASCII (known once per line, not once per rule).
    pub fn matches(&mut self, line: &str, ascii: bool) -> bool {
        if self.every_line {
            return true;
        }
        if let Some(required) = &self.required {
            match &mut self.sparing {
                None => {
                    if !required.admits(line.as_bytes()) {
                        return false;
                    }
                }
                Some(sparing) if sparing.paused > 0 => sparing.paused -= 1,
                Some(sparing) => {
                    let admitted = required.admits(line.as_bytes());
                    sparing.refused += u32::from(!admitted);
                    sparing.left -= 1;
                    if sparing.left == 0 {
                        sparing.judge();
                    }
                    if !admitted {
                        return false;
                    }
                }
            }
        }
        self.matches_past_prefilter(line, ascii)
    }

    /// [`Matcher::matches`] for a line known to contain one of [`Matcher::gate_literals`]
    /// (a source's [`literals::LiteralGate`] saw it): the prefilter, which would only find it
    /// again, is not asked.
    pub fn matches_with_literal_seen(&mut self, line: &str, ascii: bool) -> bool {
        self.every_line || self.matches_past_prefilter(line, ascii)
    }

    /// [`Matcher::matches`] from its fast path on (the prefilter passed or left out).
    #[inline(always)]
    fn matches_past_prefilter(&mut self, line: &str, ascii: bool) -> bool {
        if let Some(fast) = &self.fast {
            if fast.refuses_start(line.as_bytes()) {
                return false;
            }
            if fast.finds_starts() {
                if let Some(found) = fast.find(line, ascii, &mut self.slots) {
                    return found;
                }
            } else {
                // A pattern that starts with a class run or an alternation could start at
                // most bytes of the line: the regex crate's DFA finds where the match starts in
                // one pass, the fast path reads the groups from there (instead of the regex
                // crate's capture engine).
                let Some(found) = self.regex.find(line) else {
                    return false;
                };
                if fast.find_at(line, ascii, found.start(), &mut self.slots) == Some(true) {
                    return true;
                }
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
    #[inline]
    pub fn group(&self, index: usize) -> Option<(usize, usize)> {
        self.slots.get(index).copied().filter(|s| *s != UNSET)
    }

    /// Every group's span in the last matched line, by index ([`UNSET`] for a group that did
    /// not take part).
    #[inline]
    pub fn slots(&self) -> &[(usize, usize)] {
        &self.slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Patterns the fast path takes.
    const FAST: &[&str] = &[
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
        // A bounded run is read no further than its longest: what follows it may be more of
        // its class, or a one-byte literal.
        r"x(?P<a>\d{2})(?P<b>\d*)y",
        r"(?P<a>[a-z]{1,3})-(?P<b>[^ ]{2})",
        // Ordered alternatives, optional literals, small repetitions.
        r"(GET|POST) x",
        r"x(?P<a>a|ab)",
        r"x(?P<a>a|)y",
        r"x(?P<l>WARN|WARNING|E|ERROR) ",
        r"x(?:a|ab)(?P<c>c|bc)y",
        r"a(?:bc){0,3}(?P<d>d|bcd)",
        r"a(?:bc){1,2}?(?P<r>\S*)",
        r"for (?:invalid user )?(?P<u>\S+) from",
        // Runs that could also match what follows: tried from the right or one by one.
        r"a.*b",
        r"x(?P<a>.*) in (?P<ms>\d+) ?ms$",
        r"x(?P<a>.*?)=(?P<b>.*)",
        r"x(?P<a>.*)(?P<b>\d+)y",
        r"x(?P<a>.*)==(?P<b>=\d)",
        r"x(?P<a>.*?)==(?P<b>\d)",
        r"x(?P<a>\d*)(?P<b>\d)",
        r"a\S+\d",
        r"a\s*\s",
        r"x(?P<a>[a-z]+)(?P<b>[^\x22 ]*) ",
        r"x(?P<a>[a-z]*?)(?P<b>[a-z0-9]*)$",
        r"x\d*?$",
        r#"^\{.*"level": ?"(?P<level>error|warn)".*"status": ?(?P<status>\d{3})"#,
        r"\] (?P<logger>\S+) - .* in (?P<ms>\d+) ?ms$",
        r"kernel: .*Out of memory: Killed process \d+ \((?P<process>[^)]+)\)",
        // Alternations with runs (no group inside a branch).
        r"x(?P<b>\d+|-) ",
        r"x(?P<v>\S+|\x22[^\x22]*\x22) (?P<n>\d+)",
        r"x(?:a+|ab)(?P<r>b\w*)",
        r"x(?P<d>\d*|y)z",
        r"x(?P<a>[a-z]+|\d+)",
        r"x(?P<a>.*)(?:ms|\d+s)$",
        // Groups inside alternatives and optional parts: unset when not taken.
        r"x(?:(?P<g>a)|b)",
        r"x(?: user=(?P<user>\S+))? (?P<r>\w+)",
        r"login (?P<user>\w+)( from (?P<ip>[0-9.]+))?",
        r"x(?:(?P<a>a)|ab)(?P<b>b)?c",
        r"x(?P<o>a(?P<i>\d+)?)y",
        r"x(?:(?P<a>\d+)|(?P<b>[a-z]+))-(?P<c>.*)",
        r"x(?P<a>\d)??(?P<b>\d*)",
        r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \w+ \[\d+\] (?:(?P<user>[^@\s]+)@(?P<db>\w+) )?(?P<level>LOG|WARNING|ERROR|FATAL|PANIC):\s+",
        // Patterns that start with a run: tried where its class is, a run at a time.
        r"\d+x",
        r"[a-z]\{",
        r"(?P<ip>\d+\.\d+\.\d+\.\d+):(?P<port>\d+) ",
        r"(?P<u>\S+) - (?P<v>\S+) \[",
        r"(?P<n>\d{2,3})x",
        r"(?P<w>\w+?)=",
        r"(?P<k>[a-zé]+)=(?P<v>\S*)",
        r"\b(?P<w>\w+)\b x",
        r"(?P<d>\d+)(?P<e>\d)y",
        // Assertions, case folding and Unicode classes.
        r"\bword",
        r"a\b.*\b",
        r"x(?P<w>\w+)\b",
        r"\Bx(?P<w>\w)",
        r"(?-u:\b)a(?P<w>\w+)",
        r"(?m)^a(?P<r>.*)$",
        r"(?m)a$",
        r"(?i)get",
        r"(?i)timed? ?out",
        r"x(?i)k(?P<w>\w+)",
        r"x(?P<s>\s+)\S",
        r"x(?P<d>\d{2})",
        r"k(?P<s>\S{1,3})",
        r"é(?P<r>.{2,4})x",
        r"e(?P<r>[^a]{2})",
        r"x(?P<a>é+)",
        r"(?i)k",
        // Starts the regex crate finds (an empty-able run, an alternation first).
        r".*x",
        r"(?:\d+|x)y",
        r"(?P<w>GET|[a-z]\w*):(?P<r>.*)",
        r"(?i)\b(?P<p>timed? ?out|connection (?:refused|reset))\b",
    ];

    /// Patterns that must not take the fast path.
    const OTHER: &[&str] = &[r"(ab)+", r"x(?:ab)+", r"(?:[a-z]+\.)+x", r"x(?:\d+|-)+"];

    /// Patterns with a required-literal prefilter (some not linear; the case-insensitive
    /// `timed? ?out` has too many variants and runs without one).
    const PREFILTERED: &[&str] = &[
        r"(?P<exception>(?:[a-z]+\.)+[A-Z][A-Za-z]*(?:Exception|Error))(?::|$)",
        r"\w+ .*Out of memory: Killed process \d+ \((?P<process>[^)]+)\)",
        r#"[a-z]\{.*"level": ?"(?P<level>error|warn)".*"status": ?(?P<status>\d{3})"#,
        r"(?i)timed? ?out",
        r"\d+ get (?P<x>\d+)",
        r"\s*(?:abc|Abd)(?P<d>\d)x",
    ];

    #[test]
    fn required_literals_are_found() {
        for p in PREFILTERED.iter().filter(|p| !p.contains("timed")) {
            assert!(Matcher::new(p).unwrap().required.is_some(), "{p}");
        }
        // Too short or too many: no prefilter.
        for p in [
            r"a\d+",
            r"(?i)timeouts are bad",
            r"(a|b|c|d|e|f|g|h|i)xy",
            // Anchored: it fails at its first byte.
            r"^\w+ Exception",
        ] {
            assert!(Matcher::new(p).unwrap().required.is_none(), "{p}");
        }
    }

    #[test]
    fn a_pattern_taken_to_match_every_line_does_and_the_others_are_searched() {
        // Every pattern here is answered as the regex crate answers it, on lines made to
        // catch a wrong "matches every line": empty, only a newline, words, non-ASCII.
        let every = [
            r"", r"(?:)", r"x?", r".*", r"a*|b", r"[a-z]*?", r"a{0}", r"(?s).*", r"\d*", r"a+|",
        ];
        let searched = [
            r"^$",
            r"^",
            r"$",
            r"\b",
            r"\B",
            r"(?m)^x*$",
            r"x",
            r"a+",
            r"(a)?",
            r"(?P<x>.*)",
            r"(?-u:\b)",
            r"a{0,3}$",
            r"\A",
            r"(?m)$",
        ];
        let lines = [
            "",
            "\n",
            "x",
            "abc",
            "  ",
            "ünïcödé",
            "a b c",
            "\u{0}",
            "xxx$",
            "9",
        ];
        for p in every.iter().chain(&searched) {
            let mut m = Matcher::new(p).unwrap();
            let re = regex::Regex::new(p).unwrap();
            assert_eq!(m.every_line, every.contains(p), "{p:?}");
            for line in lines {
                let ascii = line.is_ascii();
                assert_eq!(
                    m.matches(line, ascii),
                    re.is_match(line),
                    "{p:?} on {line:?}"
                );
            }
        }
    }

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
        for p in FAST {
            assert!(engine(p).is_some(), "{p} should be fast");
        }
        for p in OTHER {
            assert!(engine(p).is_none(), "{p} should use the regex crate");
        }
        // Without groups, only an anchored pattern keeps the fast path (the regex crate's DFA
        // answers "does it match" in one pass).
        assert!(Matcher::new(r"^a\d+").unwrap().is_fast());
        assert!(!Matcher::new(r"a\d+").unwrap().is_fast());
        assert!(Matcher::new(r"a(\d+)").unwrap().is_fast());
    }

    /// The fast path of `pattern`, whatever the matcher would choose.
    fn engine(pattern: &str) -> Option<FastPattern> {
        let regex = Regex::new(pattern).unwrap();
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(pattern)
            .unwrap();
        FastPattern::compile(&hir, regex.captures_len())
    }

    /// A string the pattern (nearly) matches: each part drawn at random, then a few characters
    /// changed, so that matches, near-misses and several candidates per line are all common.
    fn sample(hir: &Hir, rng: &mut Rng, alphabet: &[char], out: &mut String) {
        use regex_syntax::hir::Class;
        let pick = |rng: &mut Rng, n: usize| (rng.next() % n.max(1) as u64) as usize;
        match hir.kind() {
            HirKind::Empty => {}
            HirKind::Literal(l) => out.push_str(std::str::from_utf8(&l.0).unwrap_or("")),
            HirKind::Class(Class::Unicode(c)) => {
                // Mostly the class's first characters (ASCII, for the usual classes), sometimes
                // any member; sometimes a character from the alphabet, member or not.
                if pick(rng, 6) == 0 {
                    out.push(alphabet[pick(rng, alphabet.len())]);
                    return;
                }
                let ranges = c.ranges();
                let r = &ranges[if pick(rng, 4) == 0 {
                    pick(rng, ranges.len())
                } else {
                    0
                }];
                let span = (r.end() as u32 - r.start() as u32).min(40) + 1;
                let c = char::from_u32(r.start() as u32 + (rng.next() % u64::from(span)) as u32);
                out.push(c.unwrap_or('x'));
            }
            HirKind::Class(Class::Bytes(c)) => {
                let r = &c.ranges()[0];
                out.push(char::from(r.start().min(127)));
            }
            HirKind::Look(_) => {
                if pick(rng, 8) == 0 {
                    out.push('\n');
                }
            }
            HirKind::Repetition(rep) => {
                let extra = rep.max.map_or(4, |m| m.saturating_sub(rep.min).min(4));
                let n = rep.min.min(6) + (rng.next() % (u64::from(extra) + 1)) as u32;
                for _ in 0..n {
                    sample(&rep.sub, rng, alphabet, out);
                }
            }
            HirKind::Capture(c) => sample(&c.sub, rng, alphabet, out),
            HirKind::Concat(items) => items.iter().for_each(|h| sample(h, rng, alphabet, out)),
            HirKind::Alternation(branches) => {
                sample(&branches[pick(rng, branches.len())], rng, alphabet, out)
            }
        }
    }

    /// `sample` twice with noise around and a few characters replaced or dropped.
    fn near_match(hir: &Hir, rng: &mut Rng, alphabet: &[char]) -> String {
        let mut text = String::new();
        for _ in 0..(rng.next() % 3) {
            text.push(alphabet[(rng.next() % alphabet.len() as u64) as usize]);
        }
        sample(hir, rng, alphabet, &mut text);
        if rng.next() & 1 == 0 {
            sample(hir, rng, alphabet, &mut text);
        }
        let mut chars: Vec<char> = text.chars().collect();
        for _ in 0..(rng.next() % 3) {
            if chars.is_empty() {
                break;
            }
            let at = (rng.next() % chars.len() as u64) as usize;
            if rng.next() & 1 == 0 {
                chars.remove(at);
            } else {
                chars[at] = alphabet[(rng.next() % alphabet.len() as u64) as usize];
            }
        }
        chars.into_iter().collect()
    }

    #[test]
    fn the_fast_path_agrees_with_the_regex_crate_capture_for_capture() {
        // ASCII, and characters where Unicode meaning matters: a two-, three- and four-byte
        // character, the Kelvin sign (`(?i)k`), a no-break space and NEL (`\s`), an
        // Arabic-Indic digit (`\d`), a line feed (`.`, `(?m)`).
        let alphabet: Vec<char> =
            "aAxyb GETget\"\"  0123456789.-[]=k/\tPOSTINFWRcde:tTiImMoOuU=_éé日😀\u{212A}\u{A0}\u{85}\u{663}\n"
                .chars()
                .collect();
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
            "at java.lang.IllegalStateException: x",
            "kernel: [1.2] Out of memory: Killed process 42 (java) total",
            r#"{"level": "error","x":1,"status": 503}"#,
            "request TIMED OUT",
            "abc1x Abd2x",
            "2026-11-28 10:00:00.123 INFO  [main] com.app.Svc - Bestellung für Zoë in 35 ms",
            "[main] com.app.Svc - 注文 in 7ms in 8 ms",
            "kernel: [1.2] Out of memory: Killed process 42 (jäva) total",
            "sshd[1]: Failed password for invalid user zoë from 10.0.0.1 port 22",
            r#"{"level":"warn","msg":"délai dépassé","status":504}"#,
            "\u{212A}elvin Temperatur timed\u{A0}out",
            "xabcy xacy xabbcy abcbcbcd abcbcd",
            "x took in 3 in 45 ms",
            "x user=zoë run xa xabc xac xabbc xa12y xay x12-a xab- login bob from 10.1.2.3 login al",
            "2026-11-28 10:00:00.123 UTC [42] zoë@shop ERROR:  x 2026-11-28 10:00:00.123 UTC [1] LOG: y",
            "10.0.0.1:80 1.2.3.4:5 ab cd - ef [ 12x 1234x zoë=ü k=v é= 123y",
            r#"x12 x- xabc x"q r" 5 xab xaab xabbc xz xyz x 12s get:x ok:é"#,
            "x a=b=c x 12 9y x a===1 x a==1==2",
            "for invalid user from for invalid user x from",
            "a word, swords\na b c\nxa a{ ab1x ax",
            r#"web kernel: Out of memory: Killed process 1 (x) x{"level": "warn","status": 500} 12 get 34"#,
        ];
        for pattern in FAST.iter().chain(OTHER).chain(PREFILTERED) {
            let mut fast = Matcher::new(pattern).unwrap();
            let direct = engine(pattern);
            let hir = regex_syntax::ParserBuilder::new()
                .build()
                .parse(pattern)
                .unwrap();
            let regex = Regex::new(pattern).unwrap();
            let mut locs = regex.capture_locations();
            // Half the lines are made of the pattern's own literal pieces among the alphabet,
            // so that most patterns match some of them, part way or whole.
            let pieces: Vec<String> = pattern
                .split(|c| "\\()[]{}?*+|^$.".contains(c))
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .chain(alphabet.iter().map(char::to_string))
                .collect();
            let (mut decided, mut matched) = (0, 0);
            for i in 0..40_000 {
                let line: String = if i < structured.len() {
                    structured[i].to_owned()
                } else if i % 3 == 0 {
                    near_match(&hir, &mut rng, &alphabet)
                } else if i % 3 == 1 {
                    let len = (rng.next() % 48) as usize;
                    (0..len)
                        .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                        .collect()
                } else {
                    let len = (rng.next() % 12) as usize;
                    (0..len)
                        .map(|_| pieces[(rng.next() % pieces.len() as u64) as usize].as_str())
                        .collect()
                };
                // The engine itself, also where the matcher prefers the regex crate.
                let mut slots = vec![UNSET; regex.captures_len()];
                let direct = direct.as_ref().and_then(|e| {
                    if e.finds_starts() {
                        e.find(&line, line.is_ascii(), &mut slots)
                    } else {
                        match regex.find(&line) {
                            Some(m) => e.find_at(&line, line.is_ascii(), m.start(), &mut slots),
                            None => Some(false),
                        }
                    }
                });
                let expected = regex.captures_read(&mut locs, &line).is_some();
                matched += usize::from(expected);
                if let Some(found) = direct {
                    decided += 1;
                    assert_eq!(found, expected, "engine: {pattern} on {line:?}");
                    if found {
                        for (g, slot) in slots.iter().enumerate() {
                            let slot = Some(*slot).filter(|s| *s != UNSET);
                            assert_eq!(
                                slot,
                                locs.get(g),
                                "engine: {pattern} group {g} on {line:?}"
                            );
                        }
                    }
                }
                assert_eq!(
                    fast.matches(&line, line.is_ascii()),
                    expected,
                    "{pattern} on {line:?}"
                );
                // A pattern without groups is only asked whether it matches.
                if expected && regex.captures_len() > 1 {
                    for g in 0..regex.captures_len() {
                        assert_eq!(
                            fast.group(g),
                            locs.get(g),
                            "{pattern} group {g} on {line:?}"
                        );
                    }
                }
            }
            // The fast path decides nearly every line itself (it hands a line to the regex
            // crate only past its work budget), and the lines exercise both outcomes.
            if engine(pattern).is_some() {
                assert!(decided > 39_000, "{pattern}: decided only {decided} lines");
            }
            assert!(matched > 0, "{pattern} matched no line");
        }
    }

    #[test]
    fn is_ascii_agrees_with_the_standard_library() {
        let mut rng = crate::test_rng::Rng(0x00A5_C11A_5C11_0001);
        let pieces = [
            "a",
            "xyz ",
            "\"GET / HTTP/1.1\" ",
            "é",
            "日",
            "😀",
            "\u{7F}",
            "\u{80}",
        ];
        let mut non_ascii = 0;
        for _ in 0..20_000 {
            let n = rng.below(40);
            // Mostly ASCII, a wide character now and then, at any offset of an 8-byte word.
            let line: String = (0..n)
                .map(|_| {
                    if rng.chance(3) {
                        rng.pick(&pieces[3..])
                    } else {
                        rng.pick(&pieces[..3])
                    }
                })
                .collect();
            assert_eq!(is_ascii(&line), line.is_ascii(), "{line:?}");
            non_ascii += usize::from(!line.is_ascii());
        }
        assert!(non_ascii > 1_000, "{non_ascii}");
    }

    #[test]
    fn non_ascii_lines_use_the_regex_crate() {
        let mut m = Matcher::new(r"user=(?P<u>\S+)").unwrap();
        assert!(m.is_fast());
        assert!(m.matches("user=zoë done", false));
        assert_eq!(m.group(1), Some((5, 9)));
    }

    /// An anchored pattern refuses a line by its first byte only where the regex crate finds
    /// no match either; and it does refuse some (else the check would be dead code).
    #[test]
    fn an_anchored_pattern_refuses_by_its_first_byte_only_what_cannot_match() {
        let patterns = [
            r"^\d{4}-\d{2}",
            r#"^\{.*"level": ?"(?P<level>error|warn)""#,
            r"(?i)^get (?P<a>[a-z]+)",
            r"^(?P<x>é+)z",
            r"^(?:GET|POST) (?P<p>\S+)",
            r"^(?P<all>a(?P<inner>\d+)b)$",
            r"^\S+ x",
            r"^a?b",
            r"^$",
            r"^(?:|x)y",
        ];
        let lines = [
            "",
            "2026-11",
            "x2026-11",
            r#"{"level":"warn""#,
            "GET abc",
            "get abc",
            "Get x",
            "éz",
            "ééz",
            "e",
            "POST /a",
            "PUT /a",
            "a12b",
            "b",
            "ab",
            "y",
            "xy",
            " x",
            "é x",
            "\u{7f}",
        ];
        let mut refused = 0;
        for pattern in patterns {
            let mut matcher = Matcher::new(pattern).unwrap();
            let regex = Regex::new(pattern).unwrap();
            let fast = matcher.fast.clone().expect("the fast path takes it");
            for line in lines {
                let theirs = regex.is_match(line);
                if fast.refuses_start(line.as_bytes()) {
                    assert!(!theirs, "{pattern} refused {line:?}, which matches");
                    refused += 1;
                }
                assert_eq!(
                    matcher.matches(line, line.is_ascii()),
                    theirs,
                    "{pattern} {line:?}"
                );
            }
        }
        assert!(
            refused > 100,
            "only {refused} lines refused by their first byte"
        );
    }

    /// A prefilter the fast path can go without is left out while it refuses too few lines
    /// (an access-log rule's literal is in every line of an access log) and asked again after
    /// the pause; one that refuses most lines stays. The answers are the regex crate's
    /// throughout.
    #[test]
    fn an_optional_prefilter_that_refuses_little_is_left_out_for_a_while() {
        let pattern = r#""(?P<method>[A-Z]+) \S+ [^"]*" (?P<status>\d{3}) "[^"]*" "[^"]*""#;
        let access = r#"1.2.3.4 - - [x] "GET /a HTTP/1.1" 200 "-" "curl""#;
        let other = r#"{"ts":"x","level":"info","msg":"a \"quoted\" word"}"#;
        let regex = Regex::new(pattern).unwrap();
        let check = |matcher: &mut Matcher, line: &str| {
            assert_eq!(matcher.matches(line, true), regex.is_match(line), "{line}");
        };
        let mut matcher = Matcher::new(pattern).unwrap();
        assert!(matcher.required.is_some() && matcher.sparing.is_some());
        for _ in 0..SPARING_WINDOW {
            check(&mut matcher, access);
        }
        let paused = matcher.sparing.as_ref().map(|s| s.paused);
        assert_eq!(paused, Some(SPARING_PAUSE));
        for i in 0..SPARING_PAUSE {
            check(&mut matcher, if i % 2 == 0 { access } else { other });
        }
        // Asked again: half the lines refused, so it stays.
        for i in 0..4 * SPARING_WINDOW {
            check(&mut matcher, if i % 2 == 0 { access } else { other });
        }
        assert_eq!(matcher.sparing.as_ref().map(|s| s.paused), Some(0));
        // A leading literal is the fast path's own search: no prefilter of it again; a longer
        // literal further in is one (optional).
        let leading = Matcher::new(r"level=error (?P<m>\S+)").unwrap();
        assert!(leading.required.is_none());
        let further = Matcher::new(r"key=(?P<k>\S+) Out of memory").unwrap();
        assert!(further.required.is_some() && further.sparing.is_some());
        // A pattern the regex crate finds the start of: its prefilter is never left out.
        let exceptions = Matcher::new(r"(?P<e>(?:[a-z]+\.)+[A-Z]\w*Exception)").unwrap();
        assert!(exceptions.required.is_some() && exceptions.sparing.is_none());
    }
}

#[cfg(test)]
mod hostile {
    use super::*;

    /// Lines built to make a backtracking engine try every split: the fast path must hand
    /// them to the regex crate after a linear amount of work and still agree with it. (Were
    /// the budget broken, this test would run for hours rather than fail.)
    #[test]
    fn nested_choices_on_long_lines_agree_with_the_regex_crate() {
        let patterns = [
            r"x(?P<a>.*)(?P<b>.*)(?P<c>.*)y",
            r"x(?P<a>\S*)(?P<b>\S*)(?P<c>\S*)=",
            r"a(?:(?P<b>a+)|a)*?z",
            r"x(?P<a>.*) (?P<b>.*) (?P<c>.*)!",
            r"(?P<w>\w+)\s+(?P<v>\w+)\s+(?P<u>\w+)\s*;",
            // No choice at all, but a start at every byte, each run scanning to the end.
            r"x(?P<a>\w*);",
            r"a(?P<b>[a-z ]*)!",
        ];
        let lines = [
            "x".repeat(20_000),
            format!("x{}", " x".repeat(10_000)),
            "a".repeat(20_000),
            format!("{}é", "ab ".repeat(7_000)),
        ];
        for pattern in patterns {
            let mut matcher = Matcher::new(pattern).unwrap();
            let regex = Regex::new(pattern).unwrap();
            for line in &lines {
                let theirs = regex.captures(line);
                assert_eq!(
                    matcher.matches(line, line.is_ascii()),
                    theirs.is_some(),
                    "{pattern}"
                );
                if let Some(caps) = theirs {
                    for g in 0..caps.len() {
                        let want = caps.get(g).map(|m| (m.start(), m.end()));
                        assert_eq!(matcher.group(g), want, "{pattern} group {g}");
                    }
                }
            }
        }
    }
}
