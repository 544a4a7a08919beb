//! JSON log records read in one pass, for rules whose fields are plain member paths
//! (`$.level`, `$.http.status`, `$['user id']`, `@.a` — what log rules almost always are).
//!
//! Building a `serde_json::Value` per record allocates a map per object and a string per
//! value, and the JSONPath engine then walks it per field. Here the paths of every such rule of
//! a source form one trie; a small strict reader goes over a record's bytes once against it:
//! members the trie does not name are checked as JSON and skipped without being decoded, and
//! the values it names are kept as spans of the record's text, turned into text only when a
//! rule reads them. A record this reader refuses (not strict JSON — `NaN` is not —, nested
//! deeper than [`MAX_DEPTH`], or a key with a lone surrogate escape) goes the slow way, the
//! document reader, so the two agree; a differential test holds the reader to serde_json.

use super::json::{replace_lone_surrogates, JsonExtractor};

/// The member path of a field expression (`$.a.b`, `$['a b'].c`, `@.a`), or `None` when it
/// is anything else (wildcards, filters, indexes, `@key`, the root itself).
pub fn member_path(expr: &str) -> Option<Vec<String>> {
    let expr = expr.trim();
    let mut rest = expr.strip_prefix('$').or_else(|| expr.strip_prefix('@'))?;
    let mut keys = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            keys.push(name.to_owned());
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            let quote = if rest.starts_with("['") { '\'' } else { '"' };
            let end = r.find(quote)?;
            let name = &r[..end];
            if name.contains('\\') {
                return None;
            }
            keys.push(name.to_owned());
            rest = r[end + 1..].strip_prefix(']')?;
        } else {
            return None;
        }
    }
    (!keys.is_empty()).then_some(keys)
}

/// Member paths of a source's JSON rules, as a trie: each path ends in a slot.
#[derive(Debug, Default)]
pub struct PathTrie {
    children: Vec<(String, PathTrie)>,
    slot: Option<usize>,
    slots: usize,
    /// The slots of the paths under this node, its own included: what a key given again
    /// forgets, without walking the subtree.
    under: Vec<usize>,
    /// Per child, in the order of `children`: its key's length and first eight bytes (see
    /// [`key_prefix`]), which decide the comparison of keys of up to eight bytes alone.
    prefixes: Vec<(usize, u64)>,
}

/// The first (up to) eight bytes of `key`, the first lowest, zeros after its end.
fn key_prefix(key: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    for (w, k) in word.iter_mut().zip(key) {
        *w = *k;
    }
    u64::from_le_bytes(word)
}

impl PathTrie {
    /// The slot of `path` (shared by rules that read the same path).
    pub fn insert(&mut self, path: &[String]) -> usize {
        let mut node = &mut *self;
        for key in path {
            let i = match node.children.iter().position(|(k, _)| k == key) {
                Some(i) => i,
                None => {
                    node.prefixes.push((key.len(), key_prefix(key.as_bytes())));
                    node.children.push((key.clone(), PathTrie::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[i].1;
        }
        if let Some(s) = node.slot {
            return s;
        }
        let s = self.slots;
        self.slots += 1;
        // Walk again: the first walk's borrow ended where the slot count changed. Every
        // node on the way (the root aside) has the new slot under it.
        let mut node = &mut *self;
        for key in path {
            let i = node
                .children
                .iter()
                .position(|(k, _)| k == key)
                .expect("inserted");
            node = &mut node.children[i].1;
            node.under.push(s);
        }
        node.slot = Some(s);
        s
    }

    /// Forgets the spans of this node and those under it.
    #[inline]
    fn clear(&self, spans: &mut [Option<(usize, usize)>]) {
        for &s in &self.under {
            spans[s] = None;
        }
    }

    /// Reads `text`, setting each slot to the span of its value (the last occurrence of a
    /// key, as a parsed document keeps); `false` when this reader refuses the text: not
    /// strict JSON, nested deeper than [`MAX_DEPTH`], or a key with a lone surrogate escape.
    /// The document reader then decides, so what is refused here is read (or counted as an
    /// error) as it always was.
    pub fn read(&self, text: &str, spans: &mut Vec<Option<(usize, usize)>>) -> bool {
        spans.clear();
        spans.resize(self.slots, None);
        let mut r = Reader {
            text,
            b: text.as_bytes(),
            i: 0,
        };
        r.ws();
        let read = if r.peek() == Some(b'{') {
            r.i += 1;
            r.object(self, spans, 1)
        } else {
            r.skip_value(0)
        };
        r.ws();
        read.is_some() && r.i == r.b.len()
    }

    /// The child named by a key's bytes as written (no escapes in them), whose first eight
    /// bytes are `prefix` (see [`key_prefix`]). Length and prefix first: most keys of a record
    /// are not in the trie, most keys are short, and a call to `memcmp` costs more.
    #[inline(always)]
    fn child(&self, key: &[u8], prefix: u64) -> Option<&PathTrie> {
        let i = self
            .prefixes
            .iter()
            .position(|&(len, p)| len == key.len() && p == prefix)?;
        let (k, child) = &self.children[i];
        (key.len() <= 8 || k.as_bytes()[8..] == key[8..]).then_some(child)
    }
}

/// The deepest nesting of objects and arrays the one-pass reader reads; deeper records go to
/// the document reader, whose parser (serde_json) refuses 128 levels and more.
pub const MAX_DEPTH: usize = 100;

/// Bytes that end the plain run of a string: its closing quote, an escape, a control
/// character (which JSON refuses inside strings).
const STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// The bytes of `word` (eight of a string, first byte lowest) that stop a plain run
/// ([`STRING_STOP`]), each as its high bit: `"` and `\\` as zero bytes of `word` xor their
/// value, control characters as bytes below 0x20. The lowest bit set is exact (a borrow only
/// marks bytes above a true one), and only it is used.
fn string_stops(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero(word ^ (ONES * u64::from(b'"')));
    let backslash = zero(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    quote | backslash | control
}

/// A strict JSON reader over a record's bytes: members the trie names are descended into or
/// kept as spans; everything else is checked as JSON and skipped without being decoded (a
/// skipped string's escapes are checked for shape only, as serde_json's skipping does, so a
/// lone surrogate escape in a value is kept, and read as U+FFFD by [`value_text`]). Every
/// method returns `None` where the text is not what JSON allows there.
struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return: nothing else).
    #[inline(always)]
    fn ws(&mut self) {
        // Most records are written compact: one comparison decides that case.
        if self.b.get(self.i).is_some_and(|&c| c > b' ') {
            return;
        }
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.i += 1)
    }

    /// The members of an object whose `{` was just read, at nesting `depth`.
    fn object(
        &mut self,
        node: &PathTrie,
        spans: &mut [Option<(usize, usize)>],
        depth: usize,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.expect(b'"')?;
            let key_start = self.i;
            let escaped = self.string()?;
            let child = if escaped {
                // Compared as text: the key decoded (a lone surrogate refuses the record,
                // as the document reader reads it as U+FFFD).
                let key: String = serde_json::from_str(&self.text[key_start - 1..self.i]).ok()?;
                node.child(key.as_bytes(), key_prefix(key.as_bytes()))
            } else {
                let key = &self.b[key_start..self.i - 1];
                if node.children.is_empty() {
                    None
                } else {
                    // Eight bytes from the key's start (the text goes on after it: its value at
                    // least), those past its end masked off.
                    let prefix = match self.b.get(key_start..).and_then(<[u8]>::first_chunk::<8>) {
                        Some(word) if key.len() < 8 => {
                            u64::from_le_bytes(*word) & ((1u64 << (8 * key.len())) - 1)
                        }
                        Some(word) => u64::from_le_bytes(*word),
                        None => key_prefix(key),
                    };
                    node.child(key, prefix)
                }
            };
            self.ws();
            self.expect(b':')?;
            self.ws();
            match child {
                None => self.value(depth)?,
                Some(child) => {
                    // A key given twice: the last one wins, as in a parsed document (a
                    // leaf's own span is set below; only paths under it need forgetting).
                    if !child.children.is_empty() {
                        child.clear(spans);
                    }
                    let start = self.i;
                    if !child.children.is_empty() && self.peek() == Some(b'{') {
                        self.i += 1;
                        self.object(child, spans, depth + 1)?;
                    } else {
                        self.value(depth)?;
                    }
                    if let Some(slot) = child.slot {
                        spans[slot] = Some((start, self.i));
                    }
                }
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// Checks and skips one value inside `depth` levels of nesting: the usual ones (strings
    /// and numbers) first, without the container bookkeeping of [`Reader::skip_value`].
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string().map(|_| ())
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => self.skip_value(depth),
        }
    }

    /// Checks and skips one value inside `depth` levels of nesting. Iterative: one bit per
    /// open container (1 for an object) says which bracket closes it.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        let mut stack: u128 = 0;
        let mut level = 0;
        loop {
            self.ws();
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    self.string()?;
                }
                open @ (b'{' | b'[') => {
                    self.i += 1;
                    level += 1;
                    if depth + level > MAX_DEPTH {
                        return None;
                    }
                    let object = open == b'{';
                    stack = stack << 1 | u128::from(object);
                    self.ws();
                    if self.peek() != Some(if object { b'}' } else { b']' }) {
                        if object {
                            self.member_key()?;
                        }
                        continue;
                    }
                    self.i += 1;
                    level -= 1;
                    stack >>= 1;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.number()?,
            }
            // After a value: close what ends here, or go on to the next element or member.
            loop {
                if level == 0 {
                    return Some(());
                }
                self.ws();
                let object = stack & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if object {
                            self.ws();
                            self.member_key()?;
                        }
                        break;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                self.i += 1;
                level -= 1;
                stack >>= 1;
            }
        }
    }

    /// A member's key (not decoded) and its colon.
    #[inline(always)]
    fn member_key(&mut self) -> Option<()> {
        self.expect(b'"')?;
        self.string()?;
        self.ws();
        self.expect(b':')
    }

    /// The rest of a string whose `"` was just read; whether it has escapes.
    #[inline(always)]
    fn string(&mut self) -> Option<bool> {
        let b = self.b;
        let mut i = self.i;
        let mut escaped = false;
        loop {
            // The plain run: eight bytes at a time, then (near the end of the text) what is
            // left byte by byte.
            loop {
                if let Some(chunk) = b.get(i..).and_then(<[u8]>::first_chunk::<8>) {
                    let stops = string_stops(u64::from_le_bytes(*chunk));
                    if stops != 0 {
                        i += (stops.trailing_zeros() / 8) as usize;
                        break;
                    }
                    i += 8;
                } else {
                    while b.get(i).is_some_and(|&c| !STRING_STOP[usize::from(c)]) {
                        i += 1;
                    }
                    break;
                }
            }
            match b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match b.get(i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let hex = b.get(i + 2..i + 6)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return None;
                            }
                            i += 6;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// A number as JSON writes it: `-`, then `0` or digits not starting with `0`, then maybe
    /// a fraction and an exponent, each with at least one digit.
    #[inline(always)]
    fn number(&mut self) -> Option<()> {
        let b = self.b;
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => i = digits_end(b, i + 1),
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            let end = digits_end(b, i + 1);
            if end == i + 1 {
                return None;
            }
            i = end;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            let end = digits_end(b, i);
            if end == i {
                return None;
            }
            i = end;
        }
        self.i = i;
        Some(())
    }
}

/// Where the run of ASCII digits from `i` ends.
#[inline(always)]
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// The text of a value as the JSONPath reader gives it: strings unescaped (a lone surrogate
/// escape as U+FFFD, see [`replace_lone_surrogates`]), numbers and booleans as JSON writes
/// them, `null` as nothing, objects and arrays as compact JSON.
pub fn value_text(raw: &str) -> Option<String> {
    let mut text = String::new();
    value_text_into(raw, &mut text).then_some(text)
}

/// [`value_text`] appended to `out` (a buffer reused from record to record); `false`, and
/// `out` unchanged, for `null` or a value that does not read.
pub fn value_text_into(raw: &str, out: &mut String) -> bool {
    let Some(first) = raw.as_bytes().first() else {
        return false;
    };
    let text = match first {
        // Without an escape, a string's text is what stands between its quotes (the reader
        // refused control characters): no second parse.
        // (A plain loop: kept strings are short, where memchr's set-up costs more.)
        b'"' if !raw.bytes().any(|c| c == b'\\') => {
            out.push_str(&raw[1..raw.len() - 1]);
            return true;
        }
        _ if is_plain_integer(raw) || is_plain_decimal(raw) || matches!(first, b't' | b'f') => {
            out.push_str(raw);
            return true;
        }
        b'n' => None,
        // With escapes: decoded here, as serde_json decodes them (the reader checked their
        // shape); what does not decode goes to serde_json after all.
        b'"' => {
            let len = out.len();
            if unescape_into(&raw[1..raw.len() - 1], out).is_some() {
                return true;
            }
            out.truncate(len);
            lossy::<String>(raw)
        }
        // Read as the document reader reads a record (numbers out of a double's range as
        // the strings they are written as, lone surrogates as U+FFFD), so the two agree.
        b'{' | b'[' => JsonExtractor::parse(raw).ok().map(|v| v.to_string()),
        // A number out of a double's range (`1e400`): the document reader reads it as the
        // string it is written as.
        _ => Some(
            serde_json::from_str::<serde_json::Number>(raw)
                .map_or_else(|_| raw.to_owned(), |n| n.to_string()),
        ),
    };
    text.map(|t| out.push_str(&t)).is_some()
}

/// The text of a string's body with escapes (`inner`, between its quotes, as the one-pass
/// reader accepted it: no control characters, escapes of the right shape) appended to `out`,
/// as serde_json reads it, a lone surrogate escape as U+FFFD (as [`replace_lone_surrogates`]
/// makes it before serde_json reads it); `None` for an escape it does not know.
fn unescape_into(inner: &str, out: &mut String) -> Option<()> {
    let b = inner.as_bytes();
    let (mut copied, mut i) = (0, 0);
    while let Some(found) = memchr::memchr(b'\\', &b[i..]) {
        let at = i + found;
        out.push_str(&inner[copied..at]);
        let (c, len) = match *b.get(at + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => match hex4(b, at + 2)? {
                high @ 0xD800..=0xDBFF => match hex4(b, at + 8) {
                    Some(low @ 0xDC00..=0xDFFF) if b.get(at + 6..at + 8) == Some(&b"\\u"[..]) => {
                        let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                        (char::from_u32(c)?, 12)
                    }
                    _ => ('\u{fffd}', 6),
                },
                0xDC00..=0xDFFF => ('\u{fffd}', 6),
                unit => (char::from_u32(unit)?, 6),
            },
            _ => return None,
        };
        out.push(c);
        i = at + len;
        copied = i;
    }
    out.push_str(&inner[copied..]);
    Some(())
}

/// The code unit of the four hex digits at `at`.
fn hex4(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)?.iter().try_fold(0, |n, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return None,
        };
        Some(n << 4 | u32::from(digit))
    })
}

/// Whether `raw` is an integer serde_json writes back as it is: digits, maybe after a minus,
/// no leading zero (nor `-0`, which it reads as a float), few enough to fit in 64 bits.
fn is_plain_integer(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw).as_bytes();
    matches!(digits.first(), Some(b'1'..=b'9'))
        && digits.len() <= 18
        && digits.iter().all(u8::is_ascii_digit)
}

/// Whether `raw` is a decimal serde_json writes back as it is: `-`, digits with no leading
/// zero, a fraction that does not end in `0`, at most 15 digits in all, no exponent, and not
/// below 0.0001 (where its writer turns to `1e-5`). Parsed exactly (at most 15 digits and a
/// power of ten up to 15: one correctly rounded division) and written back by ryu as the
/// shortest text that reads back to the same double, which for 15 digits or fewer is the
/// text itself, the tests check this against serde_json.
fn is_plain_decimal(raw: &str) -> bool {
    let digits = raw.strip_prefix('-').unwrap_or(raw).as_bytes();
    let Some(dot) = digits.iter().position(|&c| c == b'.') else {
        return false;
    };
    let (whole, fraction) = (&digits[..dot], &digits[dot + 1..]);
    let whole_ok = match whole {
        [b'0'] => fraction.iter().take_while(|&&c| c == b'0').count() <= 3,
        [b'1'..=b'9', ..] => true,
        _ => false,
    };
    whole_ok
        && whole.iter().all(u8::is_ascii_digit)
        && fraction.iter().all(u8::is_ascii_digit)
        && fraction.last().is_some_and(|&c| c != b'0')
        && whole.len() + fraction.len() <= 15
}

/// `raw` deserialized, a lone surrogate escape read as U+FFFD. The one-pass reader skips
/// values without checking their escapes (serde_json's `RawValue`), so a value it kept may
/// hold one: read as the document reader reads it, the two agree.
fn lossy<T: serde::de::DeserializeOwned>(raw: &str) -> Option<T> {
    serde_json::from_str(raw)
        .ok()
        .or_else(|| serde_json::from_str(&replace_lone_surrogates(raw)?).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::json::JsonExtractor;
    use crate::test_rng::Rng;

    /// The one-pass reader's trie of `fields` with each field's slot, and the document
    /// reader of the same fields: what the differential tests compare.
    fn both_readers(fields: &[&str]) -> (PathTrie, Vec<usize>, JsonExtractor) {
        let mut trie = PathTrie::default();
        let slots = fields
            .iter()
            .map(|f| trie.insert(&member_path(f).unwrap()))
            .collect();
        let extractor = JsonExtractor::new(None, fields.iter().copied()).unwrap();
        (trie, slots, extractor)
    }

    /// Today's reader before the hand-written one: serde_json's deserializer walked against
    /// the trie (`IgnoredAny` for what no rule reads, `RawValue` for what one does). The
    /// differential tests hold the new reader to it.
    mod serde_walk {
        use std::fmt;

        use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, Visitor};
        use serde_json::value::RawValue;

        use super::super::PathTrie;

        pub fn read(trie: &PathTrie, text: &str, spans: &mut Vec<Option<(usize, usize)>>) -> bool {
            spans.clear();
            spans.resize(trie.slots, None);
            let mut de = serde_json::Deserializer::from_str(text);
            let walk = Walk {
                node: trie,
                base: text.as_ptr() as usize,
                spans,
            };
            walk.deserialize(&mut de).is_ok() && de.end().is_ok()
        }

        struct Walk<'t, 's> {
            node: &'t PathTrie,
            base: usize,
            spans: &'s mut Vec<Option<(usize, usize)>>,
        }

        impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_any(self)
            }
        }

        impl<'de> Visitor<'de> for Walk<'_, '_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let Some((_, child)) = self.node.children.iter().find(|(k, _)| *k == key)
                    else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    // A key given twice: the last one wins, as in a parsed document.
                    child.clear(self.spans);
                    match child.slot {
                        Some(slot) => {
                            let raw = map.next_value::<&'de RawValue>()?;
                            let start = raw.get().as_ptr() as usize - self.base;
                            self.spans[slot] = Some((start, start + raw.get().len()));
                            if !child.children.is_empty() {
                                // Both a value and a parent of others (`$.a` and `$.a.b`): read inside.
                                let mut de = serde_json::Deserializer::from_str(raw.get());
                                let inner = Walk {
                                    node: child,
                                    base: self.base,
                                    spans: &mut *self.spans,
                                };
                                inner
                                    .deserialize(&mut de)
                                    .map_err(serde::de::Error::custom)?;
                            }
                        }
                        None => map.next_value_seed(Walk {
                            node: child,
                            base: self.base,
                            spans: &mut *self.spans,
                        })?,
                    }
                }
                Ok(())
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(())
            }
            fn visit_str<E>(self, _: &str) -> Result<(), E> {
                Ok(())
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<(), E> {
                Ok(())
            }
            fn visit_string<E>(self, _: String) -> Result<(), E> {
                Ok(())
            }
            fn visit_bool<E>(self, _: bool) -> Result<(), E> {
                Ok(())
            }
            fn visit_i64<E>(self, _: i64) -> Result<(), E> {
                Ok(())
            }
            fn visit_u64<E>(self, _: u64) -> Result<(), E> {
                Ok(())
            }
            fn visit_f64<E>(self, _: f64) -> Result<(), E> {
                Ok(())
            }
            fn visit_unit<E>(self) -> Result<(), E> {
                Ok(())
            }
        }
    }

    #[test]
    fn member_paths_are_recognised_and_others_are_not() {
        assert_eq!(member_path("$.a.b_1"), Some(vec!["a".into(), "b_1".into()]));
        assert_eq!(
            member_path("$['user id'].x"),
            Some(vec!["user id".into(), "x".into()])
        );
        assert_eq!(member_path("@.a"), Some(vec!["a".into()]));
        for other in [
            "$",
            "$.a[0]",
            "$.*",
            "$..a",
            "$.a[?@.b]",
            "@key",
            "$['a\\'b']",
            "$.1a",
        ] {
            assert_eq!(member_path(other), None, "{other}");
        }
    }

    /// The one-pass reader and the JSONPath reader give every field the same text.
    #[test]
    fn agrees_with_the_jsonpath_reader() {
        let fields = [
            "$.level",
            "$.http.status",
            "$.http.latency_ms",
            "$['user id']",
            "$.a",
            "$.a.b",
            "$.n",
            "$.t",
            "$.arr",
            "$.obj",
            "$.missing",
            "$.http.missing.deeper",
        ];
        let lines = [
            r#"{"level":"info","http":{"status":200,"latency_ms":12.50},"user id":"Zo\u00eb"}"#,
            r#"{"http":{"latency_ms":1e3,"status":"503"},"level":"warn","level":"dup"}"#,
            r#"{"a":{"b":1},"n":null,"t":true,"arr":[1, 2],"obj":{"x" : "y"}}"#,
            r#"{"a":"flat","http":[1,2],"level":{"nested":"obj"}}"#,
            r#"  {"level":"spaces" , "http" : { "status" : -0.0 } }  "#,
            r#"[1,2,3]"#,
            r#""just a string""#,
            r#"{"a":{"b":{"c":1}},"a":{"b":2}}"#,
            // Lone surrogates: U+FFFD in both readers (the one-pass reader skips values
            // without checking their escapes).
            r#"{"level":"a\ud800","http":{"status":"b\udc00x"},"user id":"\ud83d\ude00\ud800"}"#,
            r#"{"obj":{"x":"\udfff"},"arr":["\ud800\ud800"],"a":{"b":"\\ud800"}}"#,
            // Integers written back as they are, and those that are not.
            r#"{"n":-0,"t":0,"a":-7,"level":123456789012345678,"arr":-99999999999999999}"#,
            r#"{"n":18446744073709551616,"t":-9223372036854775809,"a":1234567890123456789}"#,
            r#"{"n":0.0,"t":10,"a":"-5","level":"","obj":" spaced é \u00e9 "}"#,
        ];
        let (trie, slots, slow) = both_readers(&fields);
        let mut spans = Vec::new();
        for line in lines {
            assert!(trie.read(line, &mut spans), "{line}");
            let fast: Vec<Option<String>> = slots
                .iter()
                .map(|s| spans[*s].and_then(|(a, b)| value_text(&line[a..b])))
                .collect();
            let doc = JsonExtractor::parse(line).unwrap();
            let mut rows = Vec::new();
            slow.extract(&doc, &mut rows);
            assert_eq!(fast, rows[0], "{line}");
        }
    }

    /// Keys are told apart by length and first eight bytes, then the rest: keys that share
    /// their first eight bytes, one of exactly eight, one a byte short, one escaped.
    #[test]
    fn keys_sharing_their_first_eight_bytes_are_told_apart() {
        let mut trie = PathTrie::default();
        let ms = trie.insert(&["latency_ms".into()]);
        let duration = trie.insert(&["duration".into()]);
        let mut spans = Vec::new();
        let line = r#"{"latency_mx":1,"latency_ms":2,"duratio":3,"duration":4,"latency_m":5}"#;
        assert!(trie.read(line, &mut spans));
        let text = |s: usize, spans: &[Option<(usize, usize)>], line: &str| {
            spans[s].map(|(a, b)| line[a..b].to_owned())
        };
        assert_eq!(text(ms, &spans, line).as_deref(), Some("2"));
        assert_eq!(text(duration, &spans, line).as_deref(), Some("4"));
        let line = r#"{"latency\u005fms":7,"durationx":8,"latency_msx":9}"#;
        assert!(trie.read(line, &mut spans));
        assert_eq!(text(ms, &spans, line).as_deref(), Some("7"));
        assert_eq!(text(duration, &spans, line), None);
    }

    /// A lone surrogate in a key: the one-pass reader refuses the record (it compares keys
    /// as text) and the document reader reads the rest of it.
    #[test]
    fn a_lone_surrogate_in_a_key_goes_the_slow_way() {
        let mut trie = PathTrie::default();
        trie.insert(&["level".into()]);
        let mut spans = Vec::new();
        let line = r#"{"k\ud800":1,"level":"warn"}"#;
        assert!(!trie.read(line, &mut spans));
        let doc = JsonExtractor::parse(line).unwrap();
        assert_eq!(doc["level"], "warn");
        assert_eq!(doc["k\u{fffd}"], 1);
    }

    #[test]
    fn what_the_reader_refuses() {
        let mut trie = PathTrie::default();
        trie.insert(&["a".into()]);
        let mut spans = Vec::new();
        for bad in ["not json", "{\"a\":1", "{\"a\":1} x", "{\"a\":NaN}", ""] {
            assert!(!trie.read(bad, &mut spans), "{bad}");
        }
    }

    /// Nesting: up to [`MAX_DEPTH`] levels read here; deeper ones go to the document reader,
    /// which reads them up to serde_json's limit (127) and refuses them past it, so such a
    /// record counts as `not_json` whatever its rules' paths (serde_json's walk skipped a
    /// deep value no rule read without a limit, and took the record).
    #[test]
    fn deep_records_go_to_the_document_reader() {
        let mut trie = PathTrie::default();
        let slot = trie.insert(&["a".into()]);
        let mut spans = Vec::new();
        let nested =
            |n: usize| format!("{{\"x\":{}1{},\"a\":\"v\"}}", "[".repeat(n), "]".repeat(n));
        let deepest = nested(MAX_DEPTH - 1);
        assert!(trie.read(&deepest, &mut spans));
        assert_eq!(spans[slot].map(|(a, b)| &deepest[a..b]), Some("\"v\""));
        for n in [MAX_DEPTH, 126, 200] {
            assert!(!trie.read(&nested(n), &mut spans), "{n}");
        }
        let doc = JsonExtractor::parse(&nested(126)).unwrap();
        assert_eq!(doc["a"], "v");
        assert!(JsonExtractor::parse(&nested(127)).is_err());
        assert!(serde_walk::read(&trie, &nested(200), &mut spans));
    }

    /// A seeded generator of JSON records and near-records: keys from a small pool (some the
    /// trie names, some escaped forms of them, some with lone surrogates), strings with every
    /// escape and raw UTF-8, numbers of every shape (including out of a double's range),
    /// duplicate keys, deep nesting, random whitespace; then, for some, one mutation of the
    /// text (a byte dropped or inserted, the text cut, garbage after it).
    struct Gen(Rng);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0.next()
        }
        fn below(&mut self, n: usize) -> usize {
            self.0.below(n as u64) as usize
        }
        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            self.0.pick(items)
        }
        fn ws(&mut self, out: &mut String) {
            if self.below(4) == 0 {
                out.push_str(self.pick(&[" ", "  ", "\n", "\t", "\r\n ", " \t"]));
            }
        }
        fn value(&mut self, out: &mut String, depth: usize) {
            let kind = if depth > 6 {
                self.below(4)
            } else {
                self.below(7)
            };
            match kind {
                0 => out.push_str(self.pick(&[
                    r#""info""#,
                    r#""""#,
                    r#""a\"b\\c\/d\b\f\n\r\t""#,
                    r#""Zo\u00eb \u00E9""#,
                    r#""caf\u00e9 é ü 中文 😀""#,
                    r#""\ud83d\ude00""#,
                    r#""x\ud800y""#,
                    r#""\udc00""#,
                    r#""\\ud800""#,
                    r#""request done""#,
                    r#""1e400""#,
                ])),
                1 => out.push_str(self.pick(&[
                    "0",
                    "-0",
                    "12",
                    "-7",
                    "200",
                    "0.0",
                    "12.50",
                    "-0.042",
                    "1e3",
                    "1E-2",
                    "2.5e+10",
                    "1e400",
                    "-1E+999",
                    "123456789012345678",
                    "18446744073709551616",
                    "-9223372036854775809",
                    "123456789012345678901234567890",
                ])),
                2 => out.push_str(self.pick(&["true", "false", "null"])),
                3 if depth < 3 && self.below(8) == 0 => {
                    // Deep nesting around the value: below, at and past the limits.
                    let n = self.pick(&["90", "99", "100", "101", "126", "127", "128", "140"]);
                    let n: usize = n.parse().unwrap();
                    let (open, close) = if self.below(2) == 0 {
                        ("[", "]")
                    } else {
                        ("{\"a\":", "}")
                    };
                    out.push_str(&open.repeat(n));
                    self.value(out, 7);
                    out.push_str(&close.repeat(n));
                }
                3 => out.push_str(self.pick(&["\"s\"", "1", "[]", "{}"])),
                4 | 5 => {
                    out.push('{');
                    for i in 0..self.below(5) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.ws(out);
                        out.push_str(self.pick(&[
                            r#""level""#,
                            r#""http""#,
                            r#""status""#,
                            r#""a""#,
                            r#""b""#,
                            r#""x""#,
                            r#""user id""#,
                            r#""lévél""#,
                            r#""lev\u0065l""#,
                            r#""user\u0020id""#,
                            r#""l\u00e9v\u00e9l""#,
                            r#""k\ud800""#,
                            r#""\"q\"""#,
                            r#""""#,
                            // Keys compared by length and first eight bytes: longer
                            // ones that differ only after them, exactly eight, one less.
                            r#""latency_ms""#,
                            r#""latency_mx""#,
                            r#""latency_m""#,
                            r#""duration""#,
                            r#""duratio""#,
                            r#""latency\u005fms""#,
                        ]));
                        self.ws(out);
                        out.push(':');
                        self.ws(out);
                        self.value(out, depth + 1);
                        self.ws(out);
                    }
                    out.push('}');
                }
                _ => {
                    out.push('[');
                    for i in 0..self.below(4) {
                        if i > 0 {
                            out.push(',');
                        }
                        self.ws(out);
                        self.value(out, depth + 1);
                        self.ws(out);
                    }
                    out.push(']');
                }
            }
        }
        fn record(&mut self) -> String {
            let mut out = String::new();
            self.ws(&mut out);
            if self.below(10) == 0 {
                self.value(&mut out, 0);
            } else {
                // Mostly objects, as log records are.
                let mut inner = String::new();
                while !inner.starts_with('{') {
                    inner.clear();
                    self.value(&mut inner, 0);
                }
                out.push_str(&inner);
            }
            self.ws(&mut out);
            if self.below(3) == 0 {
                self.mutate(&mut out);
            }
            out
        }
        fn mutate(&mut self, text: &mut String) {
            let at = self.below(text.len() + 1);
            let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap();
            match self.below(4) {
                0 if at < text.len() => {
                    text.remove(at);
                }
                0 | 1 => {
                    let c = self.pick(&[
                        "{", "}", "[", "]", ",", ":", "\"", "\\", " ", "0", "-", ".", "e", "a",
                        "\u{1}", "\u{7f}", "é", "\\u", "\\x", "nul", "01",
                    ]);
                    text.insert_str(at, c);
                }
                2 => text.truncate(at),
                _ => text.push_str(self.pick(&[" x", "}", "]", ",", "{}", " \u{0}", "\u{feff}"])),
            }
        }
    }

    /// The deepest nesting of brackets outside strings in a text (duplicate keys included,
    /// which a parsed document drops).
    fn depth(text: &str) -> usize {
        let (mut level, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
        for c in text.bytes() {
            match (in_string, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, b'\\') => escaped = true,
                (true, false, b'"') | (false, _, b'"') => in_string = !in_string,
                (false, _, b'[' | b'{') => {
                    level += 1;
                    deepest = deepest.max(level);
                }
                (false, _, b']' | b'}') => level = level.saturating_sub(1),
                _ => {}
            }
        }
        deepest
    }

    /// Differential: on 30,000 generated records, whatever the one-pass reader accepts, the
    /// document reader parses to the same field texts; where serde_json's walk (the reader
    /// before this one) also accepts, the spans are the same; and what both serde_json
    /// readers accept, this one accepts too, unless it is nested deeper than [`MAX_DEPTH`].
    #[test]
    fn agrees_with_serde_json_on_generated_records() {
        let fields = [
            "$.level",
            "$.http",
            "$.http.status",
            "$.a",
            "$.a.b",
            "$.a.a.a",
            "$['user id']",
            "$['lévél']",
            "$['\"q\"']",
            "$.x.missing",
            "$.latency_ms",
            "$.http.latency_ms",
            "$.duration",
            "$.a.latency_mx",
        ];
        let (trie, slots, slow) = both_readers(&fields);
        let mut gen = Gen(Rng(0x5eed_2026_1205));
        let (mut spans, mut old_spans) = (Vec::new(), Vec::new());
        let (mut accepted, mut refused, mut deep) = (0, 0, 0);
        for _ in 0..30_000 {
            let line = gen.record();
            let new = trie.read(&line, &mut spans);
            let old = serde_walk::read(&trie, &line, &mut old_spans);
            if new {
                accepted += 1;
                let doc = JsonExtractor::parse(&line).unwrap_or_else(|e| {
                    panic!("accepted but the document reader refuses {line:?}: {e}")
                });
                let mut rows = Vec::new();
                slow.extract(&doc, &mut rows);
                let fast: Vec<Option<String>> = slots
                    .iter()
                    .map(|s| spans[*s].and_then(|(a, b)| value_text(&line[a..b])))
                    .collect();
                assert_eq!(fast, rows[0], "{line:?}");
                if old {
                    assert_eq!(spans, old_spans, "{line:?}");
                }
            } else {
                refused += 1;
                let strict = serde_json::from_str::<serde_json::Value>(&line);
                if old && strict.is_ok() {
                    assert!(depth(&line) > MAX_DEPTH, "refused {line:?}");
                    deep += 1;
                }
            }
        }
        // Not vacuous: both outcomes, and valid JSON refused for its depth, were seen.
        assert!(accepted > 10_000 && refused > 5_000, "{accepted} {refused}");
        assert!(deep > 0, "{deep}");
    }

    /// Strings with escapes are decoded here as serde_json decodes them (a lone surrogate as
    /// U+FFFD, as the document reader reads it): seeded strings of escapes of every kind,
    /// surrogate pairs, halves of them in every order, raw UTF-8 and escaped backslashes.
    #[test]
    fn escaped_strings_decode_as_serde_json_decodes_them() {
        let pieces = [
            "a",
            "é",
            "中",
            "😀",
            " ",
            "\\\"",
            "\\\\",
            "\\/",
            "\\b",
            "\\f",
            "\\n",
            "\\r",
            "\\t",
            "\\u0000",
            "\\u001f",
            "\\u0041",
            "\\u00e9",
            "\\u00E9",
            "\\uFFFF",
            "\\ufffd",
            "\\ud83d",
            "\\ude00",
            "\\uD83D",
            "\\uDE00",
            "\\ud800",
            "\\udbff",
            "\\udc00",
            "\\udfff",
            "\\ud83d\\ude00",
            "\\\\ud800",
            "\\\\\\ud800",
            "u",
            "d800",
        ];
        let mut gen = Gen(Rng(0x0e5c_a9e5));
        let mut decoded = 0;
        for _ in 0..100_000 {
            let mut raw = String::from("\"");
            for _ in 0..gen.below(7) {
                raw.push_str(gen.pick(&pieces));
            }
            raw.push('"');
            let mut spans = Vec::new();
            assert!(PathTrie::default().read(&raw, &mut spans), "{raw}");
            let serde = lossy::<String>(&raw);
            assert_eq!(value_text(&raw), serde, "{raw}");
            let mut out = String::from("kept");
            if unescape_into(&raw[1..raw.len() - 1], &mut out).is_some() {
                decoded += 1;
                assert_eq!(Some(&out[4..]), serde.as_deref(), "{raw}");
            }
        }
        assert_eq!(decoded, 100_000);
    }

    /// The eight-byte scan finds the first byte that stops a plain run, as the table does:
    /// every byte value at every position among plain bytes, and seeded random words.
    #[test]
    fn eight_byte_scan_agrees_with_the_table() {
        let first = |w: [u8; 8]| w.iter().position(|&c| STRING_STOP[usize::from(c)]);
        let scanned = |w: [u8; 8]| {
            let stops = string_stops(u64::from_le_bytes(w));
            (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize)
        };
        for at in 0..8 {
            for c in 0..=255u8 {
                for fill in [b'a', 0xc3, 0xff, 0x20, 0x7f] {
                    let mut w = [fill; 8];
                    w[at] = c;
                    assert_eq!(scanned(w), first(w), "{w:?}");
                }
            }
        }
        let mut gen = Gen(Rng(7));
        for _ in 0..100_000 {
            let w = gen.next().to_le_bytes();
            assert_eq!(scanned(w), first(w), "{w:?}");
            // Mostly plain bytes, some stops among them.
            let w = gen.next().to_le_bytes().map(|c| match c % 16 {
                0 => b'"',
                1 => b'\\',
                2 => c % 0x20,
                _ => 0x20 + c % 0x60,
            });
            assert_eq!(scanned(w), first(w), "{w:?}");
        }
    }

    /// Decimals taken as written are what serde_json writes back; those it writes otherwise
    /// are not taken (a seeded sweep of shapes and lengths).
    #[test]
    fn plain_decimals_are_written_back_as_serde_json_writes_them() {
        let serde = |raw: &str| {
            serde_json::from_str::<serde_json::Number>(raw)
                .unwrap()
                .to_string()
        };
        for raw in [
            "12.5",
            "0.042",
            "-3.25",
            "0.0001",
            "999999999999.999",
            "0.1",
        ] {
            assert!(is_plain_decimal(raw), "{raw}");
            assert_eq!(serde(raw), raw);
        }
        for raw in [
            "12.50",
            "0.00001",
            "1.0",
            "01.5",
            "1e3",
            "1.5e3",
            "12",
            ".5",
            "5.",
            "1234567890123.456",
            "-",
            "0.0",
        ] {
            assert!(!is_plain_decimal(raw), "{raw}");
        }
        let mut gen = Gen(Rng(42));
        let mut taken = 0;
        for _ in 0..200_000 {
            let whole = match gen.below(4) {
                0 => "0".to_owned(),
                _ => (gen.next() % 10u64.pow(gen.below(14) as u32 + 1)).to_string(),
            };
            let zeros = "0".repeat(gen.below(6));
            let width = gen.below(12) + 1;
            let fraction = format!("{zeros}{:0width$}", gen.next() % 10u64.pow(width as u32));
            let sign = if gen.below(4) == 0 { "-" } else { "" };
            let raw = format!("{sign}{whole}.{fraction}");
            if is_plain_decimal(&raw) {
                taken += 1;
                assert_eq!(serde(&raw), raw);
            }
        }
        assert!(taken > 50_000, "{taken}");
    }
}
