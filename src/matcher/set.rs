//! Which of a source's line rules can match a line, in one pass over it: the gate of their
//! literals ([`super::literals`]) and, for the rules it does not decide, a set of patterns.
//!
//! With several regex rules, every rule used to be tried on every line, so a line cost the sum
//! of what each rule's matcher spends to refuse it. A [`PatternSet`] holds the rules' patterns
//! as one [`RegexSet`] (the regex crate's multi-pattern lazy DFA): one scan of the line tells
//! which patterns match somewhere in it, and only those rules run their own matcher for the
//! captures. A pattern the set reports as not matching cannot match, so skipping its rule
//! changes nothing: rule order, `when`, `derive` and several rules matching one line all stay
//! as they were.
//!
//! Not every rule is worth a place in the set. A pattern anchored at the start of the line is
//! refused by its own matcher at the first bytes, cheaper than any scan; a pattern with a
//! Unicode word boundary makes the lazy DFA give up on non-ASCII lines (the set would then fall
//! back to a slow engine for all its patterns). Those rules keep running on every line. Below
//! [`MIN_MEMBERS`] members the scan costs more than the matchers it would spare.

use regex::RegexSet;
use regex_syntax::hir::Look;

use super::literals::{LiteralGate, Verdict};
use super::Matcher;

/// Fewest patterns a set is built for. The set's scan (an overlapping search of the lazy DFA)
/// costs about 35 instructions per byte, while each rule's own prefilter or fast path refuses
/// most lines with a memchr-speed search. Measured with callgrind on bench/bench.py's logs:
/// with 9 rules (mixed) a line cost 19% more with the set, with 10 (mixed2) 31% more, with
/// 19 (both mixed logs interleaved) 6% less, with 24 (many) 12% less; so only configs with
/// many rules get one.
pub const MIN_MEMBERS: usize = 16;

/// Whether line rule `rule` matches `line`: a rule the candidates (when there are any, scanned
/// on this line) rule out cannot match and its matcher is not asked; a rule whose literal the
/// gate saw is matched without searching for it again; otherwise its matcher decides (and
/// holds the captures). `ascii`: whether the line is all ASCII.
#[inline]
pub fn rule_matches(
    candidates: Option<&Candidates>,
    rule: usize,
    matcher: &mut crate::matcher::Matcher,
    line: &str,
    ascii: bool,
) -> bool {
    let Some(candidates) = candidates else {
        return matcher.matches(line, ascii);
    };
    if !candidates.may_match(rule) {
        return false;
    }
    match candidates.gate.as_ref().map(|g| g.verdict(rule)) {
        Some(Verdict::Refused) => false,
        Some(Verdict::Seen) => matcher.matches_with_literal_seen(line, ascii),
        _ => matcher.matches(line, ascii),
    }
}

/// What tells, in one pass over a line, which of a source's line rules can match it: a gate of
/// the rules' literals (from [`super::literals::MIN_RULES`] rules with literals) and, with many
/// rules the gate does not decide, a set of their patterns.
#[derive(Clone)]
pub struct Candidates {
    set: Option<PatternSet>,
    gate: Option<LiteralGate>,
}

impl Candidates {
    /// Candidates for `rules` (rule index, its matcher) among `rule_count` rules; `None` when
    /// neither a gate nor a set would pay (see [`LiteralGate::build`] and [`MIN_MEMBERS`]).
    pub fn build<'m>(
        rules: impl IntoIterator<Item = (usize, &'m Matcher)> + Clone,
        rule_count: usize,
    ) -> Option<Candidates> {
        let gate = LiteralGate::build(
            rules
                .clone()
                .into_iter()
                .filter_map(|(i, m)| Some((i, m.gate_literals()?))),
            rule_count,
        );
        // The set, for the rules the gate does not decide: its scan (an overlapping search of
        // a lazy DFA) costs several times the gate's, and spares nothing for a rule the gate
        // refuses already.
        let set = PatternSet::build(
            rules
                .into_iter()
                .filter(|(i, _)| !gate.as_ref().is_some_and(|g| g.decides(*i)))
                .map(|(i, m)| (i, m.regex().as_str())),
            rule_count,
            MIN_MEMBERS,
        );
        (set.is_some() || gate.is_some()).then_some(Candidates { set, gate })
    }

    /// Scans `line` once; afterwards [`Candidates::may_match`] answers for each rule.
    pub fn scan(&mut self, line: &str) {
        if let Some(gate) = &mut self.gate {
            gate.scan(line.as_bytes());
        }
        if let Some(set) = &mut self.set {
            set.scan(line);
        }
    }

    /// Whether rule `rule` may match the line last scanned, as far as the set tells (always,
    /// for a rule not in the set; the gate's verdict is [`rule_matches`]'s to read).
    pub fn may_match(&self, rule: usize) -> bool {
        self.set.as_ref().is_none_or(|s| s.may_match(rule))
    }

    /// The set of patterns, if there is one.
    pub fn set(&self) -> Option<&PatternSet> {
        self.set.as_ref()
    }

    /// The gate of literals, if there is one.
    pub fn gate(&self) -> Option<&LiteralGate> {
        self.gate.as_ref()
    }
}

/// The line rules (by their index among a source's rules) whose patterns can match the
/// current line, by one scan of the regex crate's multi-pattern DFA.
#[derive(Clone)]
pub struct PatternSet {
    set: RegexSet,
    /// The rule index of each set pattern, in pattern order.
    members: Vec<usize>,
    /// Per rule index: whether it is decided by the set.
    is_member: Vec<bool>,
    /// Per set pattern: whether it matched the last line scanned (reused).
    hits: Vec<bool>,
    /// Per rule index: whether the rule may match the last line scanned.
    possible: Vec<bool>,
}

impl PatternSet {
    /// A set over `rules` (rule index, pattern) among `rule_count` rules, leaving out the
    /// patterns the set would not speed up; `None` when fewer than `minimum` remain or the set
    /// does not compile within the regex crate's size limits.
    fn build<'p>(
        rules: impl IntoIterator<Item = (usize, &'p str)>,
        rule_count: usize,
        minimum: usize,
    ) -> Option<PatternSet> {
        let (members, patterns): (Vec<usize>, Vec<&str>) =
            rules.into_iter().filter(|(_, p)| worth_a_place(p)).unzip();
        if members.len() < minimum.max(1) {
            return None;
        }
        // Each pattern passed the limits on its own; a set past the regex crate's size limit
        // is simply not built.
        let set = RegexSet::new(&patterns).ok()?;
        let mut is_member = vec![false; rule_count];
        for &m in &members {
            is_member[m] = true;
        }
        Some(PatternSet {
            set,
            hits: vec![false; members.len()],
            possible: vec![true; rule_count],
            members,
            is_member,
        })
    }

    /// Scans `line` once; afterwards [`PatternSet::may_match`] answers for each rule.
    pub fn scan(&mut self, line: &str) {
        self.hits.iter_mut().for_each(|h| *h = false);
        self.set.matches_read_at(&mut self.hits, line, 0);
        for (&rule, &hit) in self.members.iter().zip(&self.hits) {
            self.possible[rule] = hit;
        }
    }

    /// Whether rule `rule` may match the line last scanned (always, for a rule not in the set).
    pub fn may_match(&self, rule: usize) -> bool {
        self.possible.get(rule).copied().unwrap_or(true)
    }

    /// Whether rule `rule` is decided by the set.
    pub fn decides(&self, rule: usize) -> bool {
        self.is_member.get(rule).copied().unwrap_or(false)
    }
}

/// Whether a pattern gains from the set: not anchored at the start (its matcher refuses a line
/// at once) and without Unicode word boundaries (on which the lazy DFA gives up).
fn worth_a_place(pattern: &str) -> bool {
    let Ok(hir) = regex_syntax::ParserBuilder::new().build().parse(pattern) else {
        return false;
    };
    let props = hir.properties();
    let unicode_words = [
        Look::WordUnicode,
        Look::WordUnicodeNegate,
        Look::WordStartUnicode,
        Look::WordEndUnicode,
        Look::WordStartHalfUnicode,
        Look::WordEndHalfUnicode,
    ];
    !props.look_set_prefix().contains(Look::Start)
        && !unicode_words.iter().any(|l| props.look_set().contains(*l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Matcher;
    use crate::test_rng::Rng;

    /// Patterns of the bench's mixed rows and others: some in the set, some left out.
    const PATTERNS: &[&str] = &[
        r#""(?P<method>GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) \S+ HTTP\/[\d.]+" (?P<status>\d{3}) (?P<bytes>\d+) "[^"]*" "[^"]*" (?P<seconds>[\d.]+)$"#,
        r#""(?:GET|POST|PUT|DELETE|PATCH) (?P<endpoint>\/api\/[a-z]+)[^" ]* HTTP\/1\.[01]" 5\d\d "#,
        r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} +(?P<level>TRACE|DEBUG|INFO|WARN|ERROR) +\[(?P<thread>[^\]]+)\] (?P<logger>\S+) - ",
        r"\] (?P<logger>\S+) - .* in (?P<ms>\d+) ?ms$",
        r"(?P<exception>(?:[a-z]+\.)+[A-Z][A-Za-z]*(?:Exception|Error))(?::|$)",
        r"sshd\[\d+\]: (?P<result>Accepted|Failed) (?P<auth>password|publickey) for (?:invalid user )?\S+ from (?P<ip>[\d.]+) port \d+",
        r"kernel: .*Out of memory: Killed process \d+ \((?P<process>[^)]+)\)",
        r#"^\{.*"level": ?"(?P<level>error|warn)".*"status": ?(?P<status>\d{3})"#,
        r"(?i)timed? ?out",
        r"(?i)\b(?P<p>timed? ?out|connection (?:refused|reset))\b",
        r"(?m)a$",
        r"x(?P<w>\w+)",
        r"",
        r"é(?P<r>.{2,4})x",
        // Literals that overlap: "level=error 42" holds both, and a pass that reports one
        // occurrence cannot report the other.
        r"level=error ",
        r"error (?P<code>\d+)",
    ];

    #[test]
    fn anchored_and_unicode_word_patterns_stay_out() {
        let set = every_pattern();
        for (i, p) in PATTERNS.iter().enumerate() {
            let out = p.starts_with('^') || p.contains(r"\b");
            assert_eq!(set.decides(i), !out, "{p}");
            if out {
                assert!(set.may_match(i), "{p}");
            }
        }
        // Too few members for the set to pay (the gate of their literals does).
        let matchers: Vec<Matcher> = PATTERNS.iter().map(|p| Matcher::new(p).unwrap()).collect();
        let candidates = Candidates::build(matchers.iter().enumerate(), PATTERNS.len()).unwrap();
        assert!(candidates.set().is_none());
        assert!(candidates.gate().is_some());
    }

    /// A set over every pattern of [`PATTERNS`] that gains from one, however few.
    fn every_pattern() -> PatternSet {
        PatternSet::build(PATTERNS.iter().copied().enumerate(), PATTERNS.len(), 1).unwrap()
    }

    /// Pieces of the patterns' own literals and the bench's log shapes, which random lines are
    /// made of.
    const PIECES: &[&str] = &[
        "\"GET ",
        "/api/orders",
        " HTTP/1.1\" ",
        "503 ",
        "200 ",
        "512 ",
        "\"-\" ",
        "\"curl/8\" ",
        "0.042",
        "] ",
        "c.e.Shop",
        " - ",
        "in 35 ms",
        " ms",
        "java.io.IOException",
        ": ",
        "sshd[42]: ",
        "Accepted ",
        "Failed ",
        "password ",
        "for ",
        "invalid user ",
        "root ",
        "from 10.0.0.1 ",
        "port 22",
        "kernel: ",
        "Out of memory: Killed process 7 (java)",
        "{\"level\":\"warn\",\"status\":502}",
        "Timed out",
        "time out",
        "a",
        "x",
        "é",
        "zoë",
        "\n",
        " ",
        "xyz",
        "éabcx",
        "level=",
        "error ",
        "42",
        // Whole matches, so that every pattern matches some lines.
        r#""GET /api/orders HTTP/1.1" 503 512 "-" "curl/8" 0.042"#,
        "[main] c.e.Shop - done in 35 ms",
        "sshd[42]: Failed password for invalid user zoë from 10.0.0.1 port 22",
        "kernel: x Out of memory: Killed process 7 (java)",
    ];

    /// Differential: on lines made of pieces of the patterns' own literals and the bench's log
    /// shapes, the set says a rule may match exactly when its matcher matches.
    #[test]
    fn the_set_admits_exactly_the_rules_whose_matcher_matches() {
        let mut set = every_pattern();
        let mut matchers: Vec<Matcher> =
            PATTERNS.iter().map(|p| Matcher::new(p).unwrap()).collect();
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut admitted = vec![0usize; PATTERNS.len()];
        for _ in 0..20_000 {
            let n = rng.below(10) as usize;
            let line: String = (0..n).map(|_| rng.pick(PIECES)).collect();
            set.scan(&line);
            for (i, m) in matchers.iter_mut().enumerate() {
                let matched = m.matches(&line, line.is_ascii());
                if set.decides(i) {
                    assert_eq!(set.may_match(i), matched, "{} on {line:?}", PATTERNS[i]);
                    admitted[i] += usize::from(matched);
                } else {
                    assert!(set.may_match(i));
                }
            }
        }
        for (i, p) in PATTERNS.iter().enumerate() {
            if set.decides(i) {
                assert!(
                    admitted[i] > 0,
                    "{p} never matched: the test shows nothing for it"
                );
            }
        }
    }

    /// Differential: a rule asked through the candidates (the gate of literals, no set: too
    /// few rules) matches exactly the lines its matcher alone matches, with the same groups.
    #[test]
    fn rules_asked_through_the_candidates_match_as_their_matchers_alone() {
        let mut alone: Vec<Matcher> = PATTERNS.iter().map(|p| Matcher::new(p).unwrap()).collect();
        let mut through = alone.clone();
        let mut candidates = Candidates::build(through.iter().enumerate(), PATTERNS.len()).unwrap();
        let gate = candidates.gate().expect("enough rules with literals");
        let gated: Vec<usize> = (0..PATTERNS.len()).filter(|&i| gate.decides(i)).collect();
        assert!(
            gated.len() >= super::super::literals::MIN_RULES,
            "{gated:?}"
        );
        let mut rng = Rng(0x5eed_1234_abcd_0002);
        let mut verdicts = vec![[0usize; 3]; PATTERNS.len()];
        let mut matched = vec![0usize; PATTERNS.len()];
        for _ in 0..20_000 {
            let n = rng.below(10) as usize;
            let line: String = (0..n).map(|_| rng.pick(PIECES)).collect();
            let ascii = line.is_ascii();
            candidates.scan(&line);
            for i in 0..PATTERNS.len() {
                let verdict = candidates.gate().unwrap().verdict(i);
                verdicts[i][verdict as usize] += 1;
                let by_candidates =
                    rule_matches(Some(&candidates), i, &mut through[i], &line, ascii);
                let by_itself = alone[i].matches(&line, ascii);
                assert_eq!(by_candidates, by_itself, "{} on {line:?}", PATTERNS[i]);
                if by_itself {
                    assert_eq!(
                        through[i].slots(),
                        alone[i].slots(),
                        "{} on {line:?}",
                        PATTERNS[i]
                    );
                    matched[i] += 1;
                }
            }
        }
        // Each rule the gate holds was refused on some lines, and matched (past a seen literal)
        // on others: the test shows something for each.
        for &i in &gated {
            assert!(
                verdicts[i][Verdict::Refused as usize] > 0,
                "{}",
                PATTERNS[i]
            );
            assert!(verdicts[i][Verdict::Seen as usize] > 0, "{}", PATTERNS[i]);
            assert!(matched[i] > 0, "{}", PATTERNS[i]);
        }
    }
}
