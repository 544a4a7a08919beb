//! A fast path for the regexes log rules are usually made of: a sequence of literals and
//! character-class runs where each run ends at a character it cannot contain, like
//! `"(?P<method>[A-Z]+) \S+ [^"]*" (?P<status>\d{3})`.
//!
//! Such a pattern is deterministic: at a given start there is exactly one way to match, so it
//! runs in one forward pass with no backtracking, skipping long runs with memchr. An
//! alternation of literals (`GET|POST|PUT`, `INFO|WARN|ERROR`) where no literal is a prefix of
//! another is a step too: at most one of them can match at a position. Patterns that are not
//! of this shape (other alternations, `.*` before something it could also match, word
//! boundaries, ...) are not compiled here and use the regex crate; lines with non-ASCII bytes
//! always use the regex crate too, so Unicode classes keep their full meaning. The result is
//! the same as the regex crate's leftmost-first match, capture for capture; a differential
//! test holds the two together.

use memchr::{memchr, memchr2, memchr3};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// `slice::starts_with` without a memcmp call: literals between fields are a few bytes.
#[inline]
fn starts_with(haystack: &[u8], literal: &[u8]) -> bool {
    haystack.len() >= literal.len() && haystack.iter().zip(literal).all(|(a, b)| a == b)
}

/// A set of ASCII bytes.
#[derive(Clone)]
struct ByteSet([bool; 128]);

impl ByteSet {
    fn empty() -> ByteSet {
        ByteSet([false; 128])
    }
    fn contains(&self, b: u8) -> bool {
        b < 128 && self.0[b as usize]
    }
    fn intersects(&self, other: &ByteSet) -> bool {
        self.0.iter().zip(other.0.iter()).any(|(a, b)| *a && *b)
    }
    fn union(&mut self, other: &ByteSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }
    /// The bytes this set lacks, when there are at most three: runs over such a set end at
    /// one of them, which memchr finds.
    fn missing(&self) -> Option<Vec<u8>> {
        let missing: Vec<u8> = (0u8..128).filter(|b| !self.0[*b as usize]).collect();
        (missing.len() <= 3).then_some(missing)
    }
}

enum Step {
    Literal(Box<[u8]>),
    /// One of these literals (none a prefix of another: at most one matches).
    OneOf(Vec<Box<[u8]>>),
    Run {
        set: ByteSet,
        /// Set when the run stops at one of at most three bytes (memchr).
        stop: Option<Vec<u8>>,
        min: usize,
        max: usize,
        /// Nothing follows the run: it takes `max` (greedy) or `min` (lazy) bytes.
        take_min: bool,
    },
    Open(usize),
    Close(usize),
    AssertStart,
    AssertEnd,
}

/// A compiled deterministic pattern.
pub struct LinearPattern {
    steps: Vec<Step>,
    anchored: bool,
    /// The first byte of the leading literal, for finding candidate starts.
    first_byte: u8,
    groups: usize,
}

struct RawRun {
    set: ByteSet,
    min: usize,
    max: usize,
    greedy: bool,
}

enum Raw {
    Literal(Box<[u8]>),
    OneOf(Vec<Box<[u8]>>),
    Run(RawRun),
    Open(usize),
    Close(usize),
    Start,
    End,
}

fn class_set(class: &Class) -> ByteSet {
    let mut set = ByteSet::empty();
    match class {
        Class::Unicode(c) => {
            for r in c.ranges() {
                for b in (r.start() as u32)..=(r.end() as u32).min(127) {
                    set.0[b as usize] = true;
                }
            }
        }
        Class::Bytes(c) => {
            for r in c.ranges() {
                for b in r.start()..=r.end().min(127) {
                    set.0[b as usize] = true;
                }
            }
        }
    }
    set
}

fn flatten(hir: &Hir, out: &mut Vec<Raw>) -> Option<()> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(l) => out.push(Raw::Literal(l.0.clone())),
        HirKind::Class(c) => out.push(Raw::Run(RawRun {
            set: class_set(c),
            min: 1,
            max: 1,
            greedy: true,
        })),
        HirKind::Look(Look::Start) => out.push(Raw::Start),
        HirKind::Look(Look::End) => out.push(Raw::End),
        HirKind::Look(_) => return None,
        HirKind::Repetition(rep) => {
            let set = match rep.sub.kind() {
                HirKind::Class(c) => class_set(c),
                // ` +`, `-*`: a run of one byte.
                HirKind::Literal(l) if l.0.len() == 1 && l.0[0] < 128 => {
                    let mut set = ByteSet::empty();
                    set.0[l.0[0] as usize] = true;
                    set
                }
                _ => return None,
            };
            out.push(Raw::Run(RawRun {
                set,
                min: rep.min as usize,
                max: rep.max.map_or(usize::MAX, |m| m as usize),
                greedy: rep.greedy,
            }));
        }
        HirKind::Capture(cap) => {
            out.push(Raw::Open(cap.index as usize));
            flatten(&cap.sub, out)?;
            out.push(Raw::Close(cap.index as usize));
        }
        HirKind::Concat(items) => {
            for item in items {
                flatten(item, out)?;
            }
        }
        HirKind::Alternation(_) => {
            let mut strings = literal_strings(hir)?;
            strings.sort();
            strings.dedup();
            let prefix_free = strings.windows(2).all(|w| !w[1].starts_with(&w[0]));
            if !prefix_free || strings.iter().any(|s| s.is_empty() || !s.is_ascii()) {
                return None;
            }
            out.push(Raw::OneOf(
                strings.into_iter().map(Vec::into_boxed_slice).collect(),
            ));
        }
    }
    Some(())
}

/// Most literals an alternation is expanded to.
const MAX_ALTERNATIVES: usize = 64;

/// The strings `hir` matches when it is made of literals, concatenations and alternations
/// only (no captures, classes or repetitions), at most [`MAX_ALTERNATIVES`] of them.
fn literal_strings(hir: &Hir) -> Option<Vec<Vec<u8>>> {
    match hir.kind() {
        HirKind::Empty => Some(vec![Vec::new()]),
        HirKind::Literal(l) => Some(vec![l.0.to_vec()]),
        HirKind::Alternation(branches) => {
            let mut all = Vec::new();
            for b in branches {
                all.extend(literal_strings(b)?);
                if all.len() > MAX_ALTERNATIVES {
                    return None;
                }
            }
            Some(all)
        }
        HirKind::Concat(items) => {
            let mut all = vec![Vec::new()];
            for item in items {
                let tails = literal_strings(item)?;
                if all.len() * tails.len() > MAX_ALTERNATIVES {
                    return None;
                }
                all = all
                    .iter()
                    .flat_map(|head| {
                        tails.iter().map(move |t| {
                            let mut s = head.clone();
                            s.extend_from_slice(t);
                            s
                        })
                    })
                    .collect();
            }
            Some(all)
        }
        _ => None,
    }
}

/// What may come right after position `i`: the bytes that can start it, and whether the
/// pattern may end there (`None` when nothing at all follows).
fn follow(raw: &[Raw], i: usize) -> Option<ByteSet> {
    let mut set = ByteSet::empty();
    for step in &raw[i + 1..] {
        match step {
            Raw::Literal(l) => {
                set.0[l[0].min(127) as usize] |= l[0] < 128;
                return Some(set);
            }
            Raw::OneOf(strings) => {
                for l in strings {
                    set.0[l[0] as usize] = true;
                }
                return Some(set);
            }
            Raw::Run(r) => {
                set.union(&r.set);
                if r.min > 0 {
                    return Some(set);
                }
            }
            // End of text cannot be mistaken for a byte of the run.
            Raw::End => return Some(set),
            Raw::Open(_) | Raw::Close(_) | Raw::Start => {}
        }
    }
    None
}

impl LinearPattern {
    /// Compiles `hir` (with `groups` capture groups, group 0 included) when it has the
    /// deterministic shape; `None` means "use the regex crate".
    pub fn compile(hir: &Hir, groups: usize) -> Option<LinearPattern> {
        let mut raw = Vec::new();
        flatten(hir, &mut raw)?;
        let first_consuming = raw
            .iter()
            .position(|s| !matches!(s, Raw::Open(_) | Raw::Close(_)))?;
        let anchored = matches!(raw[first_consuming], Raw::Start);
        let first_byte = match &raw[first_consuming] {
            Raw::Start => 0,
            Raw::Literal(l) if !l.is_empty() => l[0],
            _ => return None, // a leading run would need a try at every position
        };
        let mut steps = Vec::with_capacity(raw.len());
        for (i, step) in raw.iter().enumerate() {
            steps.push(match step {
                Raw::Literal(l) => Step::Literal(l.clone()),
                Raw::OneOf(strings) => Step::OneOf(strings.clone()),
                Raw::Open(g) => Step::Open(*g),
                Raw::Close(g) => Step::Close(*g),
                Raw::Start if i == first_consuming => Step::AssertStart,
                Raw::Start => return None,
                Raw::End => Step::AssertEnd,
                Raw::Run(r) => {
                    if r.min > r.max {
                        return None;
                    }
                    let take_min = match follow(&raw, i) {
                        Some(next) if next.intersects(&r.set) => return None,
                        Some(_) => false,
                        None => !r.greedy,
                    };
                    Step::Run {
                        stop: r.set.missing(),
                        set: r.set.clone(),
                        min: r.min,
                        max: r.max,
                        take_min,
                    }
                }
            });
        }
        Some(LinearPattern {
            steps,
            anchored,
            first_byte,
            groups,
        })
    }

    /// Finds the leftmost match in `line`, which must be ASCII. `slots` gets `(start, end)` per
    /// group, group 0 being the whole match.
    pub fn find(&self, line: &[u8], slots: &mut [(usize, usize)]) -> bool {
        debug_assert!(line.is_ascii());
        debug_assert!(slots.len() >= self.groups);
        if self.anchored {
            return self.try_at(line, 0, slots);
        }
        let mut from = 0;
        while let Some(i) = memchr(self.first_byte, &line[from..]) {
            let start = from + i;
            if self.try_at(line, start, slots) {
                return true;
            }
            from = start + 1;
        }
        false
    }

    fn try_at(&self, line: &[u8], start: usize, slots: &mut [(usize, usize)]) -> bool {
        let mut pos = start;
        for step in &self.steps {
            match step {
                Step::Literal(l) => {
                    if !starts_with(&line[pos..], l) {
                        return false;
                    }
                    pos += l.len();
                }
                Step::OneOf(strings) => {
                    let rest = &line[pos..];
                    match strings.iter().find(|l| starts_with(rest, l)) {
                        Some(l) => pos += l.len(),
                        None => return false,
                    }
                }
                Step::Run {
                    set,
                    stop,
                    min,
                    max,
                    take_min,
                } => {
                    let rest = &line[pos..];
                    let available = match stop.as_deref() {
                        Some([]) => rest.len(),
                        Some([a]) => memchr(*a, rest).unwrap_or(rest.len()),
                        Some([a, b]) => memchr2(*a, *b, rest).unwrap_or(rest.len()),
                        Some([a, b, c]) => memchr3(*a, *b, *c, rest).unwrap_or(rest.len()),
                        _ => rest
                            .iter()
                            .position(|b| !set.contains(*b))
                            .unwrap_or(rest.len()),
                    };
                    if available < *min {
                        return false;
                    }
                    pos += if *take_min { *min } else { available.min(*max) };
                }
                Step::Open(g) => slots[*g].0 = pos,
                Step::Close(g) => slots[*g].1 = pos,
                Step::AssertStart => {
                    if pos != 0 {
                        return false;
                    }
                }
                Step::AssertEnd => {
                    if pos != line.len() {
                        return false;
                    }
                }
            }
        }
        slots[0] = (start, pos);
        true
    }
}
