//! A fast path for the regexes log rules are usually made of: literals, alternations
//! (`GET|POST`, `\d+|-`), character-class runs (`\S+`, `[^"]*`, `\d{3}`, `.*`), optional parts
//! (`(?:invalid user )?`, `(?: user=(?P<u>\S+))?`), anchors and word boundaries, with capture
//! groups around or inside any of them.
//!
//! A pattern of this shape is matched by a small backtracking engine that tries choices in the
//! regex crate's priority order (greedy runs longest first, alternatives left to right), so it
//! finds the same leftmost-first match, capture for capture; a differential test and a fuzz
//! target hold the two together. It is fast because most steps have no choice at all: a run
//! followed by something it cannot contain ends where memchr finds the first byte it lacks, and
//! a run that could also match what follows (`.* in `) ends only where the next literal occurs,
//! found from the right with a reverse substring search instead of trying every length. Work is
//! bounded: past a budget proportional to the line's length the engine gives up and the caller
//! asks the regex crate, so a hostile line costs a linear amount before the regex crate's own
//! linear-time guarantee takes over.
//!
//! Lines may hold any UTF-8: classes keep their Unicode meaning (a byte of 128 or more is decoded
//! and looked up in the class's ranges; `\b` uses Unicode word characters), and bounded runs count
//! characters, not bytes. A pattern whose match could start at most bytes (a leading class
//! run or alternation) gets its start from the regex crate's DFA and its groups from here.
//! Shapes outside this (a repeated group or sequence such as `(?:[a-z]+\.)+`, CRLF anchors,
//! half word boundaries) are not compiled here and use the regex crate.

use memchr::memmem;
use memchr::{memchr, memchr2, memchr3};
use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// `slice::starts_with` without a memcmp call: literals between fields are a few bytes.
#[inline]
fn starts_with(haystack: &[u8], literal: &[u8]) -> bool {
    haystack.len() >= literal.len() && haystack.iter().zip(literal).all(|(a, b)| a == b)
}

/// The non-ASCII part of a character class.
#[derive(Clone, PartialEq)]
enum Wide {
    /// No character above U+007F (`\d` in ASCII mode, `[a-z]`).
    None,
    /// Every character above U+007F (`.`, `[^"]`).
    All,
    /// Some, as sorted inclusive ranges of code points (`\S`, `\w`, `(?i)k`).
    Ranges(Box<[(u32, u32)]>),
}

/// A set of characters: ASCII by table, the rest by [`Wide`].
#[derive(Clone)]
struct CharSet {
    ascii: [bool; 128],
    wide: Wide,
}

impl CharSet {
    fn empty() -> CharSet {
        CharSet {
            ascii: [false; 128],
            wide: Wide::None,
        }
    }

    fn of_char(c: char) -> CharSet {
        let mut set = CharSet::empty();
        if c.is_ascii() {
            set.ascii[c as usize] = true;
        } else {
            set.wide = Wide::Ranges(Box::new([(c as u32, c as u32)]));
        }
        set
    }

    fn of_class(class: &Class) -> CharSet {
        let mut set = CharSet::empty();
        let mut wide = Vec::new();
        let mut add = |start: u32, end: u32| {
            for b in start..=end.min(127) {
                set.ascii[b as usize] = true;
            }
            if end >= 128 {
                wide.push((start.max(128), end));
            }
        };
        match class {
            Class::Unicode(c) => c
                .ranges()
                .iter()
                .for_each(|r| add(r.start() as u32, r.end() as u32)),
            // A byte class in a `str` regex never matches a byte above 127 (the regex crate
            // refuses one that could, as it could split a character).
            Class::Bytes(c) => c
                .ranges()
                .iter()
                .for_each(|r| add(u32::from(r.start()), u32::from(r.end()).min(127))),
        }
        let covers = |a: u32, b: u32| wide.iter().any(|&(s, e)| s <= a && e >= b);
        set.wide = if wide.is_empty() {
            Wide::None
        } else if covers(0x80, 0xD7FF) && covers(0xE000, 0x10FFFF) {
            Wide::All
        } else {
            Wide::Ranges(wide.into_boxed_slice())
        };
        set
    }

    fn contains_wide(&self, c: char) -> bool {
        match &self.wide {
            Wide::None => false,
            Wide::All => true,
            Wide::Ranges(ranges) => {
                let c = c as u32;
                ranges.iter().any(|&(s, e)| s <= c && c <= e)
            }
        }
    }

    /// Whether every character of `self` is in `other` (both as built from one class).
    fn subset_of(&self, other: &CharSet) -> bool {
        let ascii = (0..128).all(|b| !self.ascii[b] || other.ascii[b]);
        let wide = match (&self.wide, &other.wide) {
            (Wide::None, _) | (_, Wide::All) => true,
            (_, Wide::None) | (Wide::All, Wide::Ranges(_)) => false,
            (Wide::Ranges(mine), Wide::Ranges(theirs)) => mine
                .iter()
                .all(|&(s, e)| theirs.iter().any(|&(ts, te)| ts <= s && e <= te)),
        };
        ascii && wide
    }

    fn intersects(&self, other: &CharSet) -> bool {
        let ascii = (0..128).any(|b| self.ascii[b] && other.ascii[b]);
        let wide = match (&self.wide, &other.wide) {
            (Wide::None, _) | (_, Wide::None) => false,
            (Wide::All, _) | (_, Wide::All) => true,
            (Wide::Ranges(a), Wide::Ranges(b)) => a
                .iter()
                .any(|&(s, e)| b.iter().any(|&(ts, te)| s <= te && ts <= e)),
        };
        ascii || wide
    }

    fn union(&mut self, other: &CharSet) {
        for (a, b) in self.ascii.iter_mut().zip(other.ascii.iter()) {
            *a |= *b;
        }
        self.wide = match (std::mem::replace(&mut self.wide, Wide::None), &other.wide) {
            (Wide::All, _) | (_, Wide::All) => Wide::All,
            (w, Wide::None) => w,
            (Wide::None, w) => w.clone(),
            (Wide::Ranges(a), Wide::Ranges(b)) => {
                Wide::Ranges(a.iter().chain(b.iter()).copied().collect())
            }
        };
    }

    fn full() -> CharSet {
        CharSet {
            ascii: [true; 128],
            wide: Wide::All,
        }
    }

    /// The ASCII bytes this set lacks, when there are at most three: on a line where every
    /// byte above 127 is a member (or there is none), a run over the set ends at one of them,
    /// which memchr finds.
    fn missing(&self) -> Option<Vec<u8>> {
        let missing: Vec<u8> = (0u8..128).filter(|b| !self.ascii[*b as usize]).collect();
        (missing.len() <= 3).then_some(missing)
    }

    /// The ASCII bytes in the set, when there are at most three and no other character.
    fn few_bytes(&self) -> Option<Vec<u8>> {
        let bytes: Vec<u8> = (0u8..128).filter(|b| self.ascii[*b as usize]).collect();
        (self.wide == Wide::None && !bytes.is_empty() && bytes.len() <= 3).then_some(bytes)
    }
}

/// How a run decides its length.
#[derive(Clone)]
enum RunEnd {
    /// Nothing after the run can start with a character of it, or what follows takes every
    /// length alike: the run takes all it can (`take_min` false) or its minimum.
    Fixed { take_min: bool },
    /// The next step is this literal: only the places it occurs are tried, from the right for
    /// a greedy run.
    BeforeLiteral(Box<(memmem::Finder<'static>, memmem::FinderRev<'static>)>),
    /// Every length, in priority order.
    Every,
}

#[derive(Clone)]
struct Run {
    set: CharSet,
    /// Per byte: whether it is a one-byte character of the set (no byte above 127 is), so an
    /// ASCII scan is one lookup a byte.
    table: [bool; 256],
    /// Set when the run stops at one of at most three ASCII bytes (memchr).
    stop: Option<Vec<u8>>,
    min: usize,
    max: usize,
    greedy: bool,
    end: RunEnd,
}

/// A zero-width assertion.
#[derive(Clone, Copy)]
enum Assert {
    Start,
    End,
    StartLine,
    EndLine,
    WordAscii(bool),
    WordUnicode(bool),
}

/// One of several strings, tried in the regex's priority order; may include "".
#[derive(Clone)]
struct OneOf {
    strings: Vec<Box<[u8]>>,
    /// Whether a string can start with this byte (an empty string starts with any).
    starts: [bool; 256],
    /// No string is a prefix of another: at most one matches, so there is no choice to
    /// come back to.
    exclusive: bool,
}

impl OneOf {
    fn new(strings: &[Box<[u8]>]) -> OneOf {
        let mut starts = [false; 256];
        for s in strings {
            match s.first() {
                Some(b) => starts[*b as usize] = true,
                None => starts = [true; 256],
            }
        }
        let exclusive = strings.iter().enumerate().all(|(i, a)| {
            strings
                .iter()
                .enumerate()
                .all(|(j, b)| i == j || !b.starts_with(a))
        });
        OneOf {
            strings: strings.to_vec(),
            starts,
            exclusive,
        }
    }
}

/// One step of a compiled pattern (the large ones boxed: a small enum dispatches faster).
#[derive(Clone)]
enum Step {
    /// A literal of one byte (most separators between fields): one comparison.
    Byte(u8),
    Literal(Box<[u8]>),
    OneOf(Box<OneOf>),
    Run(Box<Run>),
    Open(usize),
    Close(usize),
    Assert(Assert),
    /// An alternation of other than literals (`\d+|-`) or an optional part: each branch's first
    /// step, in priority order, and the groups inside.
    Alt(Box<Alt>),
    /// The end of a branch: on to the step after the alternation.
    Jump(usize),
}

/// Branches of an alternation or optional part.
#[derive(Clone)]
struct Alt {
    branches: Box<[usize]>,
    /// Groups inside: unset before each branch is tried, so that a group of a branch that was
    /// tried and left, or not taken, reports no span (as the regex crate's do).
    groups: Box<[usize]>,
}

/// How candidate starts of an unanchored pattern are found.
#[derive(Clone)]
enum Starts {
    /// Only at 0; when known, the bytes a match can start with (a line starting with another
    /// is refused without an attempt).
    Anchored(Option<Box<[bool; 256]>>),
    /// Where one of these bytes is (memchr) and, when `then` is known, the byte after it is
    /// one `then` holds (most `"` of a line are not followed by `GET`, `POST`, ...).
    Bytes {
        first: Vec<u8>,
        then: Option<Box<[bool; 256]>>,
    },
    /// Where this leading literal of three bytes or more is.
    Literal(Box<memmem::Finder<'static>>),
    /// Not by a search of its own: the pattern starts with a class run (`\d+\.\d+`), an
    /// alternation or a part that may be empty, so a match could start at most bytes. The
    /// regex crate's DFA finds where it starts ([`FastPattern::find_at`] reads it from there).
    ByRegex,
}

/// The bytes that can come second in a match whose first step is the one-byte literal at
/// `i` (or first, after the `^` at `i`), when each match needs one.
fn second_bytes(raw: &[Raw], i: usize) -> Option<Box<[bool; 256]>> {
    let mut set = Box::new([false; 256]);
    match &raw[next_real(raw, i)?] {
        Raw::Literal(l) => set[l[0] as usize] = true,
        Raw::OneOf(strings) => {
            for s in strings {
                set[*s.first()? as usize] = true;
            }
        }
        Raw::Run { set: run, min, .. } if *min > 0 => {
            for b in 0..128 {
                set[b] = run.ascii[b];
            }
            if run.wide != Wide::None {
                set[128..].fill(true);
            }
        }
        _ => return None,
    }
    Some(set)
}

/// A compiled pattern of the shape this module handles.
#[derive(Clone)]
pub struct FastPattern {
    steps: Vec<Step>,
    starts: Starts,
    groups: usize,
    /// No step has a choice (every run ends where it must, every alternative is exclusive):
    /// an attempt is one forward pass, run by [`FastPattern::forward`] without the
    /// backtracking engine's bookkeeping.
    forward_only: bool,
}

/// Steps before modes are decided.
enum Raw {
    Literal(Box<[u8]>),
    OneOf(Vec<Box<[u8]>>),
    Run {
        set: CharSet,
        min: usize,
        max: usize,
        greedy: bool,
    },
    Open(usize),
    Close(usize),
    Assert(Assert),
    /// Branches (their first steps), tried in order; each ends with a `Jump` past the last.
    /// `groups`: the capture groups inside, unset when their branch is not taken.
    Alt {
        branches: Vec<usize>,
        groups: Vec<usize>,
    },
    Jump(usize),
}

fn assert_of(look: Look) -> Option<Assert> {
    Some(match look {
        Look::Start => Assert::Start,
        Look::End => Assert::End,
        Look::StartLF => Assert::StartLine,
        Look::EndLF => Assert::EndLine,
        Look::WordAscii => Assert::WordAscii(true),
        Look::WordAsciiNegate => Assert::WordAscii(false),
        Look::WordUnicode => Assert::WordUnicode(true),
        Look::WordUnicodeNegate => Assert::WordUnicode(false),
        _ => return None,
    })
}

fn flatten(hir: &Hir, out: &mut Vec<Raw>) -> Option<()> {
    match hir.kind() {
        HirKind::Empty => {}
        HirKind::Literal(l) => out.push(Raw::Literal(l.0.clone())),
        HirKind::Class(c) => out.push(Raw::Run {
            set: CharSet::of_class(c),
            min: 1,
            max: 1,
            greedy: true,
        }),
        HirKind::Look(look) => out.push(Raw::Assert(assert_of(*look)?)),
        HirKind::Repetition(rep) => {
            let set = match rep.sub.kind() {
                HirKind::Class(c) => Some(CharSet::of_class(c)),
                // ` +`, `é*`: a run of one character.
                HirKind::Literal(l) => {
                    let text = std::str::from_utf8(&l.0).ok()?;
                    let mut chars = text.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) => Some(CharSet::of_char(c)),
                        _ => None,
                    }
                }
                _ => None,
            };
            match set {
                Some(set) => out.push(Raw::Run {
                    set,
                    min: rep.min as usize,
                    max: rep.max.map_or(usize::MAX, |m| m as usize),
                    greedy: rep.greedy,
                }),
                None => match literal_strings(hir) {
                    // `(?:invalid user )?`: the strings it can take, in priority order.
                    Some(strings) => out.push(Raw::OneOf(strings)),
                    // `(?: user=(?P<user>\S+))?`: the part, or nothing, in priority order.
                    None if rep.min == 0 && rep.max == Some(1) => {
                        let empty = Hir::empty();
                        let branches: [&Hir; 2] = if rep.greedy {
                            [&rep.sub, &empty]
                        } else {
                            [&empty, &rep.sub]
                        };
                        alternatives(hir, &branches, out)?;
                    }
                    None => return None,
                },
            }
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
        HirKind::Alternation(branches) => match literal_strings(hir) {
            Some(strings) => out.push(Raw::OneOf(strings)),
            // Branches with runs or groups (`\d+|-`).
            None => alternatives(hir, &branches.iter().collect::<Vec<_>>(), out)?,
        },
    }
    Some(())
}

/// Appends `branches` as an alternation: a step that tries each branch's first step in order,
/// each branch ending with a jump past the last. The groups inside `whole` are noted: a
/// branch not taken leaves them unset.
fn alternatives(whole: &Hir, branches: &[&Hir], out: &mut Vec<Raw>) -> Option<()> {
    let at = out.len();
    out.push(Raw::Jump(0));
    let (mut starts, mut jumps) = (Vec::new(), Vec::new());
    for branch in branches {
        starts.push(out.len());
        flatten(branch, out)?;
        jumps.push(out.len());
        out.push(Raw::Jump(0));
    }
    let end = out.len();
    for j in jumps {
        out[j] = Raw::Jump(end);
    }
    let mut groups = Vec::new();
    captures_in(whole, &mut groups);
    out[at] = Raw::Alt {
        branches: starts,
        groups,
    };
    Some(())
}

/// The indexes of the capture groups in `hir`.
fn captures_in(hir: &Hir, out: &mut Vec<usize>) {
    match hir.kind() {
        HirKind::Capture(c) => {
            out.push(c.index as usize);
            captures_in(&c.sub, out);
        }
        HirKind::Concat(items) | HirKind::Alternation(items) => {
            items.iter().for_each(|h| captures_in(h, out));
        }
        HirKind::Repetition(r) => captures_in(&r.sub, out),
        HirKind::Empty | HirKind::Literal(_) | HirKind::Class(_) | HirKind::Look(_) => {}
    }
}

/// Most strings an alternation or optional part is expanded to.
const MAX_ALTERNATIVES: usize = 64;
/// Most repetitions of a literal part expanded (`(?:ab){0,4}`).
const MAX_REPEAT: u32 = 4;
/// Most characters of a class inside an alternation expanded (`(?i)(?:get|put)`).
const MAX_CLASS_CHARS: usize = 4;

/// The strings `hir` matches when it is made of literals, small classes, concatenations,
/// alternations and small bounded repetitions (no captures), in the order the regex crate
/// prefers them, without repeats (a later duplicate can never be the first to match), at
/// most [`MAX_ALTERNATIVES`].
fn literal_strings(hir: &Hir) -> Option<Vec<Box<[u8]>>> {
    fn strings(hir: &Hir) -> Option<Vec<Vec<u8>>> {
        match hir.kind() {
            HirKind::Empty => Some(vec![Vec::new()]),
            HirKind::Literal(l) => Some(vec![l.0.to_vec()]),
            HirKind::Class(Class::Unicode(c)) => {
                let mut all = Vec::new();
                for r in c.ranges() {
                    for c in r.start()..=r.end() {
                        if all.len() == MAX_CLASS_CHARS {
                            return None;
                        }
                        all.push(c.to_string().into_bytes());
                    }
                }
                Some(all)
            }
            HirKind::Class(Class::Bytes(c)) => {
                let mut all = Vec::new();
                for r in c.ranges() {
                    for b in r.start()..=r.end() {
                        if all.len() == MAX_CLASS_CHARS || b > 127 {
                            return None;
                        }
                        all.push(vec![b]);
                    }
                }
                Some(all)
            }
            HirKind::Alternation(branches) => {
                let mut all = Vec::new();
                for b in branches {
                    all.extend(strings(b)?);
                    if all.len() > MAX_ALTERNATIVES {
                        return None;
                    }
                }
                Some(all)
            }
            HirKind::Concat(items) => {
                let mut all = vec![Vec::new()];
                for item in items {
                    all = product(&all, &strings(item)?)?;
                }
                Some(all)
            }
            HirKind::Repetition(rep) => {
                let max = rep.max?;
                if max > MAX_REPEAT {
                    return None;
                }
                let one = strings(&rep.sub)?;
                // Each count's strings; greedy prefers more repetitions, lazy fewer.
                let mut by_count = vec![vec![Vec::new()]];
                for _ in 0..max {
                    let next = product(by_count.last()?, &one)?;
                    by_count.push(next);
                }
                let counts: Vec<usize> = if rep.greedy {
                    (rep.min as usize..=max as usize).rev().collect()
                } else {
                    (rep.min as usize..=max as usize).collect()
                };
                let all: Vec<Vec<u8>> = counts
                    .into_iter()
                    .flat_map(|n| by_count[n].iter().cloned())
                    .collect();
                (all.len() <= MAX_ALTERNATIVES).then_some(all)
            }
            HirKind::Look(_) | HirKind::Capture(_) => None,
        }
    }
    /// Every head followed by every tail, heads outermost (the priority order of a concat).
    fn product(heads: &[Vec<u8>], tails: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
        if heads.len() * tails.len() > MAX_ALTERNATIVES {
            return None;
        }
        Some(
            heads
                .iter()
                .flat_map(|h| tails.iter().map(move |t| [h.as_slice(), t].concat()))
                .collect(),
        )
    }
    let mut unique: Vec<Box<[u8]>> = Vec::new();
    for s in strings(hir)? {
        if !unique.iter().any(|u| **u == *s) {
            unique.push(s.into_boxed_slice());
        }
    }
    Some(unique)
}

/// What can come after a step.
enum Next {
    /// The rest of the pattern can match the empty string with nothing to check: whatever a
    /// run before it takes first succeeds.
    Nothing,
    /// Every match of the rest starts with one of these characters, or at the end of the text.
    Chars(CharSet),
}

/// What may come right after step `i`.
fn follow(raw: &[Raw], i: usize) -> Next {
    let mut set = CharSet::empty();
    if first_chars(raw, i + 1, &mut set) {
        Next::Chars(set)
    } else {
        Next::Nothing
    }
}

/// Adds the characters the steps from `k` can start with to `set`; whether every path through
/// them consumes or asserts something (`false`: one reaches the end of the pattern empty).
fn first_chars(raw: &[Raw], mut k: usize, set: &mut CharSet) -> bool {
    let first_char = |s: &[u8]| std::str::from_utf8(s).ok().and_then(|t| t.chars().next());
    while let Some(step) = raw.get(k) {
        match step {
            Raw::Literal(l) => {
                match first_char(l) {
                    Some(c) => set.union(&CharSet::of_char(c)),
                    None => *set = CharSet::full(),
                }
                return true;
            }
            Raw::OneOf(strings) => {
                let mut empty = false;
                for s in strings {
                    match first_char(s) {
                        Some(c) => set.union(&CharSet::of_char(c)),
                        None => empty = true,
                    }
                }
                if !empty {
                    return true;
                }
            }
            Raw::Run { set: s, min, .. } => {
                set.union(s);
                if *min > 0 {
                    return true;
                }
            }
            // The end of the text cannot be mistaken for a character of the run.
            Raw::Assert(Assert::End) => return true,
            Raw::Assert(Assert::EndLine) => {
                set.union(&CharSet::of_char('\n'));
                return true;
            }
            // Other assertions may fail where the run's longest choice ends and hold at a
            // shorter one: the run must be able to try.
            Raw::Assert(_) => {
                *set = CharSet::full();
                return true;
            }
            Raw::Open(_) | Raw::Close(_) => {}
            Raw::Jump(to) => {
                k = *to;
                continue;
            }
            Raw::Alt { branches, .. } => {
                let mut all = true;
                for b in branches {
                    all &= first_chars(raw, *b, set);
                }
                return all;
            }
        }
        k += 1;
    }
    false
}

/// The index of the first step after `i` that consumes or asserts (captures skipped, jumps
/// followed).
fn next_real(raw: &[Raw], i: usize) -> Option<usize> {
    let mut k = i + 1;
    while let Some(step) = raw.get(k) {
        match step {
            Raw::Open(_) | Raw::Close(_) => k += 1,
            Raw::Jump(to) => k = *to,
            _ => return Some(k),
        }
    }
    None
}

/// Whether the run at `i` ends where it can whatever the length of the run before it: a
/// greedy unbounded run from zero whose end nothing after it can blur.
fn absorbs(raw: &[Raw], j: usize, before: &CharSet) -> bool {
    let Raw::Run {
        set,
        min: 0,
        max: usize::MAX,
        greedy: true,
    } = &raw[j]
    else {
        return false;
    };
    before.subset_of(set)
        && match follow(raw, j) {
            Next::Nothing => true,
            Next::Chars(next) => !next.intersects(set),
        }
}

/// Where an unanchored pattern's matches can start: at its first consuming step's first byte
/// (or its leading literal), else wherever the regex crate finds them.
fn unanchored_starts(raw: &[Raw]) -> Starts {
    let Some(at) = raw
        .iter()
        .position(|s| !matches!(s, Raw::Open(_) | Raw::Close(_) | Raw::Assert(_)))
    else {
        return Starts::ByRegex;
    };
    let (first, then) = match &raw[at] {
        Raw::Literal(l) if l.len() >= 3 => {
            return Starts::Literal(Box::new(memmem::Finder::new(l).into_owned()));
        }
        Raw::Literal(l) if l.len() == 2 => {
            let mut set = Box::new([false; 256]);
            set[l[1] as usize] = true;
            (vec![l[0]], Some(set))
        }
        Raw::Literal(l) => (vec![l[0]], second_bytes(raw, at)),
        Raw::OneOf(strings) => {
            // An empty alternative could start anywhere.
            let Some(mut bytes) = strings
                .iter()
                .map(|s| s.first().copied())
                .collect::<Option<Vec<u8>>>()
            else {
                return Starts::ByRegex;
            };
            bytes.sort_unstable();
            bytes.dedup();
            (bytes, None)
        }
        Raw::Run { set, min, .. } if *min > 0 => match set.few_bytes() {
            Some(bytes) => (bytes, None),
            None => return Starts::ByRegex,
        },
        _ => return Starts::ByRegex,
    };
    if first.len() <= 3 {
        Starts::Bytes { first, then }
    } else {
        Starts::ByRegex
    }
}

impl FastPattern {
    /// Compiles `hir` (with `groups` capture groups, group 0 included) when it has the shape
    /// this module handles; `None` means "use the regex crate".
    pub fn compile(hir: &Hir, groups: usize) -> Option<FastPattern> {
        let mut raw = Vec::new();
        flatten(hir, &mut raw)?;
        let anchored = raw
            .iter()
            .take_while(|s| matches!(s, Raw::Open(_) | Raw::Close(_) | Raw::Assert(_)))
            .any(|s| matches!(s, Raw::Assert(Assert::Start)));
        let starts = if anchored {
            // The first consuming step after the `^` (and groups opening) gives the bytes.
            let first = raw
                .iter()
                .position(|s| matches!(s, Raw::Assert(Assert::Start)))
                .and_then(|at| second_bytes(&raw, at));
            Starts::Anchored(first)
        } else {
            unanchored_starts(&raw)
        };
        let mut steps = Vec::with_capacity(raw.len());
        for (i, step) in raw.iter().enumerate() {
            steps.push(match step {
                Raw::Literal(l) if l.len() == 1 => Step::Byte(l[0]),
                Raw::Literal(l) => Step::Literal(l.clone()),
                Raw::OneOf(strings) => Step::OneOf(Box::new(OneOf::new(strings))),
                Raw::Open(g) => Step::Open(*g),
                Raw::Close(g) => Step::Close(*g),
                Raw::Assert(a) => Step::Assert(*a),
                Raw::Alt { branches, groups } => Step::Alt(Box::new(Alt {
                    branches: branches.clone().into_boxed_slice(),
                    groups: groups.clone().into_boxed_slice(),
                })),
                Raw::Jump(to) => Step::Jump(*to),
                Raw::Run {
                    set,
                    min,
                    max,
                    greedy,
                } => {
                    if min > max {
                        return None;
                    }
                    let next = next_real(&raw, i);
                    let end = match follow(&raw, i) {
                        Next::Nothing => RunEnd::Fixed { take_min: !greedy },
                        Next::Chars(chars) if !chars.intersects(set) => {
                            RunEnd::Fixed { take_min: false }
                        }
                        Next::Chars(_) => match next.map(|j| (j, &raw[j])) {
                            Some((j, _)) if absorbs(&raw, j, set) => {
                                RunEnd::Fixed { take_min: !greedy }
                            }
                            Some((_, Raw::Literal(l))) => RunEnd::BeforeLiteral(Box::new((
                                memmem::Finder::new(l).into_owned(),
                                memmem::FinderRev::new(l).into_owned(),
                            ))),
                            _ => RunEnd::Every,
                        },
                    };
                    let mut table = [false; 256];
                    table[..128].copy_from_slice(&set.ascii);
                    Step::Run(Box::new(Run {
                        table,
                        stop: set.missing(),
                        set: set.clone(),
                        min: *min,
                        max: *max,
                        greedy: *greedy,
                        end,
                    }))
                }
            });
        }
        let forward_only = steps.iter().all(|step| match step {
            Step::OneOf(one_of) => one_of.exclusive,
            Step::Run(run) => matches!(run.end, RunEnd::Fixed { .. }),
            Step::Alt(_) | Step::Jump(_) => false,
            Step::Byte(_) | Step::Literal(_) | Step::Open(_) | Step::Close(_) | Step::Assert(_) => {
                true
            }
        });
        Some(FastPattern {
            steps,
            starts,
            groups,
            forward_only,
        })
    }

    /// Whether the pattern can match only at the start of the text.
    pub fn is_anchored(&self) -> bool {
        matches!(self.starts, Starts::Anchored(_))
    }

    /// Whether `line` cannot match because of its first byte alone (an anchored pattern whose
    /// first step's bytes are known): cheaper than [`FastPattern::find`]'s attempt.
    #[inline]
    pub fn refuses_start(&self, line: &[u8]) -> bool {
        match &self.starts {
            Starts::Anchored(Some(first)) => !line.first().is_some_and(|b| first[*b as usize]),
            _ => false,
        }
    }

    /// The leading literal [`FastPattern::find`] looks for candidate starts by, if it does.
    pub fn leading_literal(&self) -> Option<&[u8]> {
        match &self.starts {
            Starts::Literal(finder) => Some(finder.needle()),
            _ => None,
        }
    }

    /// Whether [`FastPattern::find`] finds candidate starts itself (by a byte or a literal);
    /// else the caller finds the start with the regex crate and calls
    /// [`FastPattern::find_at`].
    pub fn finds_starts(&self) -> bool {
        !matches!(self.starts, Starts::ByRegex)
    }

    /// Finds the leftmost-first match in `line` (`ascii`: whether it is all ASCII). `slots`
    /// gets `(start, end)` per group, group 0 being the whole match. `None` when the work
    /// budget ran out or the pattern's starts are the regex crate's to find
    /// ([`FastPattern::finds_starts`]): the caller must ask the regex crate.
    pub fn find(&self, line: &str, ascii: bool, slots: &mut [(usize, usize)]) -> Option<bool> {
        debug_assert!(slots.len() >= self.groups);
        let mut search = Search::new(line, ascii);
        let bytes = line.as_bytes();
        match &self.starts {
            Starts::Anchored(_) => self.try_at(&mut search, 0, slots),
            Starts::Bytes { first, then } => {
                let mut from = 0;
                loop {
                    let rest = &bytes[from..];
                    let found = match first.as_slice() {
                        [a] => memchr(*a, rest),
                        [a, b] => memchr2(*a, *b, rest),
                        [a, b, c] => memchr3(*a, *b, *c, rest),
                        _ => unreachable!("one to three start bytes"),
                    };
                    let Some(i) = found else {
                        return Some(false);
                    };
                    let start = from + i;
                    let second = then
                        .as_ref()
                        .is_none_or(|t| bytes.get(start + 1).is_some_and(|b| t[*b as usize]));
                    if second && self.try_at(&mut search, start, slots)? {
                        return Some(true);
                    }
                    from = start + 1;
                }
            }
            Starts::Literal(finder) => {
                let mut from = 0;
                while let Some(i) = finder.find(&bytes[from..]) {
                    let start = from + i;
                    if self.try_at(&mut search, start, slots)? {
                        return Some(true);
                    }
                    from = start + 1;
                }
                Some(false)
            }
            Starts::ByRegex => None,
        }
    }

    /// Like [`FastPattern::find`], for a match known to start at `start` (the regex crate
    /// found it): reads its groups.
    pub fn find_at(
        &self,
        line: &str,
        ascii: bool,
        start: usize,
        slots: &mut [(usize, usize)],
    ) -> Option<bool> {
        let mut search = Search::new(line, ascii);
        self.try_at(&mut search, start, slots)
    }

    fn try_at(
        &self,
        search: &mut Search,
        start: usize,
        slots: &mut [(usize, usize)],
    ) -> Option<bool> {
        if self.forward_only {
            // The same budget as the engine's: one unit an attempt, one per eight bytes its
            // runs scan (a start at every byte, each scanning to the end, is quadratic).
            if search.budget == 0 {
                return None;
            }
            search.budget -= 1;
            return Some(self.forward(search, start, slots));
        }
        match self.go(search, 0, start, slots) {
            Outcome::Match => {
                slots[0].0 = start;
                Some(true)
            }
            Outcome::Fail => Some(false),
            Outcome::GiveUp => None,
        }
    }

    /// One attempt of a pattern without choices: each step once, in order, without the
    /// engine's recursion (the caller charges the attempt; runs charge what they scan).
    fn forward(&self, search: &mut Search, start: usize, slots: &mut [(usize, usize)]) -> bool {
        let bytes = search.bytes;
        let mut pos = start;
        for step in &self.steps {
            match step {
                Step::Byte(b) => {
                    if bytes.get(pos) != Some(b) {
                        return false;
                    }
                    pos += 1;
                }
                Step::Literal(l) => {
                    if !starts_with(&bytes[pos..], l) {
                        return false;
                    }
                    pos += l.len();
                }
                Step::OneOf(one_of) => {
                    match one_of
                        .strings
                        .iter()
                        .find(|s| starts_with(&bytes[pos..], s))
                    {
                        Some(s) => pos += s.len(),
                        None => return false,
                    }
                }
                Step::Run(run) => {
                    let Some((min_end, end)) = search.extent(run, pos) else {
                        return false;
                    };
                    search.budget = search.budget.saturating_sub((end - pos) / 8);
                    pos = match run.end {
                        RunEnd::Fixed { take_min: true } => min_end,
                        _ => end,
                    };
                }
                Step::Open(g) => slots[*g].0 = pos,
                Step::Close(g) => slots[*g].1 = pos,
                Step::Assert(a) => {
                    if !search.holds(*a, pos) {
                        return false;
                    }
                }
                Step::Alt(_) | Step::Jump(_) => unreachable!("not in a forward-only pattern"),
            }
        }
        slots[0] = (start, pos);
        true
    }

    /// Runs the steps from `i` at `pos`; choices recurse, in priority order.
    fn go(
        &self,
        search: &mut Search,
        mut i: usize,
        mut pos: usize,
        slots: &mut [(usize, usize)],
    ) -> Outcome {
        let bytes = search.bytes;
        // One unit per call: the steps of one call run forward without choices, so calls
        // (and the bytes runs scan) measure the work.
        if search.budget == 0 {
            return Outcome::GiveUp;
        }
        search.budget -= 1;
        loop {
            let Some(step) = self.steps.get(i) else {
                slots[0].1 = pos;
                return Outcome::Match;
            };
            match step {
                Step::Byte(b) => {
                    if bytes.get(pos) != Some(b) {
                        return Outcome::Fail;
                    }
                    pos += 1;
                }
                Step::Literal(l) => {
                    if !starts_with(&bytes[pos..], l) {
                        return Outcome::Fail;
                    }
                    pos += l.len();
                }
                Step::OneOf(one_of) => {
                    if !bytes.get(pos).is_none_or(|b| one_of.starts[*b as usize]) {
                        return Outcome::Fail;
                    }
                    if one_of.exclusive {
                        match one_of
                            .strings
                            .iter()
                            .find(|s| starts_with(&bytes[pos..], s))
                        {
                            Some(s) => pos += s.len(),
                            None => return Outcome::Fail,
                        }
                        i += 1;
                        continue;
                    }
                    for s in one_of.strings.iter() {
                        if starts_with(&bytes[pos..], s) {
                            match self.go(search, i + 1, pos + s.len(), slots) {
                                Outcome::Fail => {}
                                other => return other,
                            }
                        }
                    }
                    return Outcome::Fail;
                }
                Step::Run(run) => {
                    let Some((min_end, end)) = search.extent(run, pos) else {
                        return Outcome::Fail;
                    };
                    // What a run scans costs too, one unit per eight bytes.
                    search.budget = search.budget.saturating_sub((end - pos) / 8);
                    match &run.end {
                        RunEnd::Fixed { take_min } => pos = if *take_min { min_end } else { end },
                        RunEnd::BeforeLiteral(finders) => {
                            let (forward, reverse) = &**finders;
                            return self.before_literal(
                                search,
                                i,
                                (min_end, end),
                                run.greedy,
                                (forward, reverse),
                                slots,
                            );
                        }
                        RunEnd::Every => {
                            return self.every(search, i, (min_end, end), run.greedy, slots);
                        }
                    }
                }
                Step::Open(g) => slots[*g].0 = pos,
                Step::Close(g) => slots[*g].1 = pos,
                Step::Alt(alt) => {
                    for b in alt.branches.iter() {
                        for g in alt.groups.iter() {
                            slots[*g] = (usize::MAX, usize::MAX);
                        }
                        match self.go(search, *b, pos, slots) {
                            Outcome::Fail => {}
                            other => return other,
                        }
                    }
                    return Outcome::Fail;
                }
                Step::Jump(to) => {
                    i = *to;
                    continue;
                }
                Step::Assert(a) => {
                    if !search.holds(*a, pos) {
                        return Outcome::Fail;
                    }
                }
            }
            i += 1;
        }
    }

    /// The run at `i` may end at `min_end..=end`; only where the next literal starts can the
    /// rest match.
    fn before_literal(
        &self,
        search: &mut Search,
        i: usize,
        (min_end, end): (usize, usize),
        greedy: bool,
        (forward, reverse): (&memmem::Finder, &memmem::FinderRev),
        slots: &mut [(usize, usize)],
    ) -> Outcome {
        let bytes = search.bytes;
        let len = forward.needle().len();
        // Occurrences starting in min_end..=end.
        let limit = (end + len).min(bytes.len());
        if greedy {
            let mut hi = limit;
            while hi >= min_end + len {
                let Some(k) = reverse.rfind(&bytes[min_end..hi]) else {
                    break;
                };
                let at = min_end + k;
                match self.go(search, i + 1, at, slots) {
                    Outcome::Fail => {}
                    other => return other,
                }
                hi = at + len - 1;
            }
        } else {
            let mut lo = min_end;
            while lo + len <= limit {
                let Some(k) = forward.find(&bytes[lo..limit]) else {
                    break;
                };
                let at = lo + k;
                match self.go(search, i + 1, at, slots) {
                    Outcome::Fail => {}
                    other => return other,
                }
                lo = at + 1;
            }
        }
        Outcome::Fail
    }

    /// The run at `i` may end at any character boundary in `min_end..=end`: each is tried.
    fn every(
        &self,
        search: &mut Search,
        i: usize,
        (min_end, end): (usize, usize),
        greedy: bool,
        slots: &mut [(usize, usize)],
    ) -> Outcome {
        let bytes = search.bytes;
        let boundary = |p: usize| p >= bytes.len() || (bytes[p] as i8) >= -0x40;
        let mut at = if greedy { end } else { min_end };
        loop {
            match self.go(search, i + 1, at, slots) {
                Outcome::Fail => {}
                other => return other,
            }
            if greedy {
                if at == min_end {
                    return Outcome::Fail;
                }
                at -= 1;
                while !boundary(at) {
                    at -= 1;
                }
            } else {
                if at == end {
                    return Outcome::Fail;
                }
                at += 1;
                while !boundary(at) {
                    at += 1;
                }
            }
        }
    }
}

enum Outcome {
    Match,
    Fail,
    GiveUp,
}

/// One search's line and remaining budget.
struct Search<'a> {
    line: &'a str,
    bytes: &'a [u8],
    ascii: bool,
    /// Work left (a call of [`FastPattern::go`] costs one, a run's scan one per eight bytes);
    /// at zero the engine gives up.
    budget: usize,
}

impl<'a> Search<'a> {
    fn new(line: &'a str, ascii: bool) -> Search<'a> {
        Search {
            line,
            bytes: line.as_bytes(),
            ascii,
            budget: 64 + 4 * line.len(),
        }
    }

    /// Where a run from `pos` ends after its minimum and at its longest, or `None` when fewer
    /// than its minimum characters are there.
    #[inline(always)]
    fn extent(&self, run: &Run, pos: usize) -> Option<(usize, usize)> {
        let rest = &self.bytes[pos..];
        let (min_end, end) = if self.ascii || run.set.wide == Wide::None {
            // A byte is a character (or, above 127, a non-member). Nothing past the run's
            // longest is looked at (`\d{3}` reads three bytes, not the digits after them).
            let window = &rest[..rest.len().min(run.max)];
            let available = match (run.stop.as_deref(), self.ascii) {
                (Some([]), true) => window.len(),
                (Some([a]), true) => memchr(*a, window).unwrap_or(window.len()),
                (Some([a, b]), true) => memchr2(*a, *b, window).unwrap_or(window.len()),
                (Some([a, b, c]), true) => memchr3(*a, *b, *c, window).unwrap_or(window.len()),
                _ => members(&run.table, window),
            };
            if available < run.min {
                return None;
            }
            (pos + run.min, pos + available)
        } else if run.set.wide == Wide::All && run.min <= 1 && run.max == usize::MAX {
            let available = match run.stop.as_deref() {
                Some([]) => rest.len(),
                Some([a]) => memchr(*a, rest).unwrap_or(rest.len()),
                Some([a, b]) => memchr2(*a, *b, rest).unwrap_or(rest.len()),
                Some([a, b, c]) => memchr3(*a, *b, *c, rest).unwrap_or(rest.len()),
                _ => self.walk(run, pos, usize::MAX).1 - pos,
            };
            let first = match run.min {
                0 => 0,
                _ if available == 0 => return None,
                _ => char_len(rest[0]),
            };
            (pos + first, pos + available)
        } else {
            let (min_end, end) = self.walk(run, pos, run.min);
            (min_end?, end)
        };
        Some((min_end, end))
    }

    /// Walks a run character by character: where its `min`-th character ends (`None` if
    /// there are fewer) and where it ends at its longest.
    fn walk(&self, run: &Run, pos: usize, min: usize) -> (Option<usize>, usize) {
        let mut p = pos;
        let mut count = 0;
        let mut min_end = (min == 0).then_some(pos);
        while count < run.max && p < self.bytes.len() {
            let b = self.bytes[p];
            let width = if b < 128 {
                if !run.set.ascii[b as usize] {
                    break;
                }
                1
            } else {
                let c = self.line[p..].chars().next().unwrap_or('\0');
                if !run.set.contains_wide(c) {
                    break;
                }
                c.len_utf8()
            };
            p += width;
            count += 1;
            if count == min {
                min_end = Some(p);
            }
        }
        (min_end, p)
    }

    fn holds(&self, assert: Assert, pos: usize) -> bool {
        let bytes = self.bytes;
        match assert {
            Assert::Start => pos == 0,
            Assert::End => pos == bytes.len(),
            Assert::StartLine => pos == 0 || bytes[pos - 1] == b'\n',
            Assert::EndLine => pos == bytes.len() || bytes[pos] == b'\n',
            Assert::WordAscii(boundary) => {
                let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
                let before = pos > 0 && word(bytes[pos - 1]);
                let after = pos < bytes.len() && word(bytes[pos]);
                (before != after) == boundary
            }
            Assert::WordUnicode(boundary) => {
                let word = |c: Option<char>| c.is_some_and(regex_syntax::is_word_character);
                let before = word(self.line[..pos].chars().next_back());
                let after = word(self.line[pos..].chars().next());
                (before != after) == boundary
            }
        }
    }
}

/// How many bytes `bytes` starts with that `table` holds (four looked up per step).
#[inline(always)]
fn members(table: &[bool; 256], bytes: &[u8]) -> usize {
    let mut chunks = bytes.chunks_exact(4);
    let mut n = 0;
    for c in &mut chunks {
        if !table[c[0] as usize] {
            return n;
        }
        if !table[c[1] as usize] {
            return n + 1;
        }
        if !table[c[2] as usize] {
            return n + 2;
        }
        if !table[c[3] as usize] {
            return n + 3;
        }
        n += 4;
    }
    for &b in chunks.remainder() {
        if !table[b as usize] {
            return n;
        }
        n += 1;
    }
    n
}

/// The length of the UTF-8 sequence a lead byte starts.
fn char_len(lead: u8) -> usize {
    match lead {
        0..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}
