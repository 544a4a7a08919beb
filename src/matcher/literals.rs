//! Which line rules' literals a line contains, in one SIMD pass over it.
//!
//! Most rules of a log have a literal every match contains (`level=error `, ` duration=`,
//! `Out of memory: Killed process`), and each rule's [`super::Matcher`] refuses a line without
//! it by a substring search of its own: with n such rules, n searches of every line, each with
//! its own set-up. A [`LiteralGate`] holds the literals of all of a source's rules in one
//! packed multi-literal searcher (aho-corasick's Teddy, the regex crate's own literal engine):
//! one pass over the line tells which literals are in it. A rule none of whose literals is in
//! the line cannot match and is not asked; a rule one of whose literals was seen skips its own
//! search for it.
//!
//! The pass reports non-overlapping matches, leftmost first, so an occurrence of a literal
//! that overlaps a reported one is not reported. Such an occurrence is possible only where the
//! two literals can overlap as strings (one contains the other, or an end of one is a start of
//! the other); that is known when the gate is built, and a rule whose literal could have been
//! hidden by one that was seen is left to its own matcher ([`Verdict::Maybe`]). So the gate
//! never refuses a line its rule would match.

use aho_corasick::packed::{Config, MatchKind, Searcher};

/// Most distinct literals a gate holds (one bit each in a `u64`; Teddy's own limit is 64).
pub const MAX_LITERALS: usize = 64;

/// Fewest rules with literals for which a gate pays. Teddy's pass takes fewer instructions
/// than a few memmem searches but more cycles per instruction (vector shuffles), so it is
/// judged by CPU time. Measured on bench/bench.py's logs (1,000,000 lines, one thread, medians
/// of alternated runs): 6 rules with literals (the mixed and mixed2 rows) −2% and +2%, a wash
/// (though −12% and −6% instructions); 11 (the mixed rules and the many row's five more, on
/// its log) −9%; 17 (the many row, in place of most of its pattern set) −13% or more. 3 (the
/// node row) cost 14% more instructions. Eight lies between the wash and the gain.
pub const MIN_RULES: usize = 8;

/// What the gate knows about one rule on the line last scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// None of the rule's literals is in the line: it cannot match.
    Refused,
    /// One of its literals is in the line: its matcher need not search for it again.
    Seen,
    /// Not decided by the gate (a rule without literals, or one whose literal may have been
    /// hidden by an overlapping one): its matcher decides as on its own.
    Maybe,
}

/// A rule's literals, as bits of the gate's literal numbers.
#[derive(Clone, Debug)]
struct Member {
    rule: usize,
    /// Its literals: one of them is in every line it matches.
    needs: u64,
    /// Literals that could hide one of its literals from the pass (they overlap it as strings).
    hidden_by: u64,
}

/// The literals of a source's rules in one searcher, with per-rule verdicts for the line last
/// scanned.
#[derive(Clone, Debug)]
pub struct LiteralGate {
    searcher: Searcher,
    members: Vec<Member>,
    /// Per rule index: the verdict on the last line scanned.
    verdicts: Vec<Verdict>,
}

impl LiteralGate {
    /// A gate over `rules` (rule index, its literals) among `rule_count` rules, holding the
    /// rules in order while their distinct literals number at most [`MAX_LITERALS`] (a rule
    /// that would pass it is left out); `None` when fewer than [`MIN_RULES`] rules are held or
    /// no SIMD searcher can be built on this machine (each matcher then searches on its own,
    /// as without a gate).
    pub fn build<'l>(
        rules: impl IntoIterator<Item = (usize, Vec<&'l [u8]>)>,
        rule_count: usize,
    ) -> Option<LiteralGate> {
        let mut literals: Vec<&[u8]> = Vec::new();
        let mut members = Vec::new();
        for (rule, rule_literals) in rules {
            if rule_literals.is_empty() || rule_literals.iter().any(|l| l.is_empty()) {
                continue;
            }
            // A rule whose literals would pass the gate's limit stays out (its matcher
            // searches on its own); the rules before it keep their places.
            let known = literals.len();
            let mut needs = 0u64;
            for literal in rule_literals {
                let bit = match literals.iter().position(|l| *l == literal) {
                    Some(bit) => bit,
                    None => {
                        literals.push(literal);
                        literals.len() - 1
                    }
                };
                if bit >= MAX_LITERALS {
                    break;
                }
                needs |= 1 << bit;
            }
            if literals.len() > MAX_LITERALS {
                literals.truncate(known);
                continue;
            }
            members.push(Member {
                rule,
                needs,
                hidden_by: 0,
            });
        }
        if members.len() < MIN_RULES {
            return None;
        }
        for member in &mut members {
            for (bit, literal) in literals.iter().enumerate() {
                if member.needs & (1 << bit) == 0 {
                    continue;
                }
                for (other_bit, other) in literals.iter().enumerate() {
                    if other_bit != bit && can_overlap(literal, other) {
                        member.hidden_by |= 1 << other_bit;
                    }
                }
            }
        }
        let searcher = Config::new()
            .match_kind(MatchKind::LeftmostFirst)
            .builder()
            .extend(&literals)
            .build()?;
        Some(LiteralGate {
            searcher,
            members,
            verdicts: vec![Verdict::Maybe; rule_count],
        })
    }

    /// Scans `line`: afterwards [`LiteralGate::verdict`] tells each rule's.
    pub fn scan(&mut self, line: &[u8]) {
        let mut seen = 0u64;
        for found in self.searcher.find_iter(line) {
            seen |= 1 << found.pattern().as_usize();
        }
        for member in &self.members {
            self.verdicts[member.rule] = if seen & member.needs != 0 {
                Verdict::Seen
            } else if seen & member.hidden_by != 0 {
                Verdict::Maybe
            } else {
                Verdict::Refused
            };
        }
    }

    /// The verdict on rule `rule` for the line last scanned ([`Verdict::Maybe`] for a rule the
    /// gate does not hold).
    #[inline]
    pub fn verdict(&self, rule: usize) -> Verdict {
        self.verdicts.get(rule).copied().unwrap_or(Verdict::Maybe)
    }

    /// Whether rule `rule`'s literals are in the gate.
    pub fn decides(&self, rule: usize) -> bool {
        self.members.iter().any(|m| m.rule == rule)
    }
}

/// Whether an occurrence of `a` and one of `b` can overlap in some text: one contains the
/// other, or a proper end of one is a start of the other.
fn can_overlap(a: &[u8], b: &[u8]) -> bool {
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let end_is_start =
        |x: &[u8], y: &[u8]| (1..x.len().min(y.len())).any(|k| x[x.len() - k..] == y[..k]);
    contains(a, b) || contains(b, a) || end_is_start(a, b) || end_is_start(b, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    #[test]
    fn literals_overlap_where_one_holds_the_other_or_an_end_meets_a_start() {
        assert!(can_overlap(b"level=error ", b"error"));
        assert!(can_overlap(b"error", b"level=error "));
        assert!(can_overlap(b"abc", b"cde"));
        assert!(can_overlap(b"cde", b"abc"));
        assert!(can_overlap(b"abc", b"abc"));
        assert!(!can_overlap(b"abc", b"xyz"));
        assert!(!can_overlap(b"duration=", b"level="));
        // A space ends one and starts the other: "level=error duration=1".
        assert!(can_overlap(b" duration=", b"level=error "));
        // "ab" ends with "b", "ba" starts with it.
        assert!(can_overlap(b"ab", b"ba"));
    }

    /// Differential: on lines made of the literals' own pieces, glued so that they overlap in
    /// every way, a rule is refused only when none of its literals is in the line, and said
    /// seen only when one is.
    #[test]
    fn the_gate_refuses_only_lines_without_any_of_a_rules_literals() {
        let rules: Vec<Vec<&[u8]>> = vec![
            vec![b"level=error "],
            vec![b"error"],
            vec![b" duration="],
            vec![b"abcab", b"cabx"],
            vec![b"bca"],
            vec![b"Exception", b"Error"],
            vec![b"xx"],
            vec![b"lev"],
            vec![b"ion="],
        ];
        let mut gate = LiteralGate::build(rules.iter().cloned().enumerate(), rules.len() + 1)
            .expect("a SIMD searcher on this machine");
        assert_eq!(gate.verdict(rules.len()), Verdict::Maybe, "not a member");
        let pieces: &[&[u8]] = &[
            b"level=",
            b"error ",
            b"error",
            b"Error",
            b" duration=",
            b"dura",
            b"tion=",
            b"a",
            b"b",
            b"c",
            b"x",
            b"abcab",
            b"cabx",
            b"bca",
            b" ",
            b"Exception",
            b"lev",
            b"el=",
            b"0.25",
            b"\xc3\xa9",
        ];
        let mut rng = Rng(0x9a7e_0000_0000_0001);
        let mut counts = [[0usize; 3]; 9];
        for _ in 0..30_000 {
            let n = rng.below(40) as usize;
            let line: Vec<u8> = (0..n)
                .flat_map(|_| rng.pick(pieces).iter().copied())
                .collect();
            gate.scan(&line);
            for (rule, literals) in rules.iter().enumerate() {
                let present = literals
                    .iter()
                    .any(|l| line.windows(l.len()).any(|w| w == *l));
                let verdict = gate.verdict(rule);
                match verdict {
                    Verdict::Refused => assert!(!present, "rule {rule} refused on {line:?}"),
                    Verdict::Seen => assert!(present, "rule {rule} seen on {line:?}"),
                    Verdict::Maybe => {}
                }
                counts[rule][verdict as usize] += 1;
            }
        }
        // Every rule was refused and seen on some lines, so the test shows something for each.
        for (rule, c) in counts.iter().enumerate() {
            assert!(c[0] > 0 && c[1] > 0, "rule {rule}: {c:?}");
        }
        // The overlapping ones were left to their matchers on some lines.
        assert!(counts[1][2] > 0, "{counts:?}");
    }

    #[test]
    fn a_gate_needs_enough_rules_with_literals() {
        let literals = [
            &b"abc"[..],
            b"abd",
            b"xyz",
            b"uvw",
            b"klm",
            b"nop",
            b"qrs",
            b"tuv",
            b"wxy",
        ];
        let with = |n: usize| (0..n).map(|i| (i, vec![literals[i]]));
        assert!(LiteralGate::build(with(MIN_RULES - 1), 8).is_none());
        assert!(LiteralGate::build(with(MIN_RULES - 1).chain([(7, vec![])]), 8).is_none());
        assert!(LiteralGate::build(with(MIN_RULES), 8).is_some());
    }

    /// Past [`MAX_LITERALS`] distinct literals, the rules that would add more stay out; the
    /// others (before and after) are held.
    #[test]
    fn rules_past_the_literal_limit_stay_out_and_the_others_are_held() {
        let words: Vec<Vec<u8>> = (0..80).map(|i| format!("w{i:03}x").into_bytes()).collect();
        // Rule 0: 60 literals; rule 1: 10 more (past the limit); rules 2..: one each, shared
        // with rule 0 or new while room is left.
        let mut rules: Vec<(usize, Vec<&[u8]>)> = vec![
            (0, words[..60].iter().map(Vec::as_slice).collect()),
            (1, words[60..70].iter().map(Vec::as_slice).collect()),
        ];
        for i in 0..MIN_RULES {
            rules.push((2 + i, vec![words[i * 7 % 60].as_slice()]));
        }
        rules.push((2 + MIN_RULES, vec![words[75].as_slice()]));
        let mut gate = LiteralGate::build(rules, 3 + MIN_RULES).expect("enough rules held");
        assert!(gate.decides(0));
        assert!(!gate.decides(1), "past the limit");
        assert!((2..3 + MIN_RULES).all(|r| gate.decides(r)));
        gate.scan(b"a w065x and w075x here");
        assert_eq!(gate.verdict(1), Verdict::Maybe, "left to its matcher");
        assert_eq!(gate.verdict(2 + MIN_RULES), Verdict::Seen);
        assert_eq!(gate.verdict(0), Verdict::Refused);
    }
}
