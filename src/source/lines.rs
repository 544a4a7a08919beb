//! Splitting a byte stream into lines: partial lines held until their newline arrives, a
//! length cap that keeps memory flat, and invalid UTF-8 repaired instead of failing.
//!
//! Pure: no I/O, no clock, no metrics. The tailer feeds it what it reads and adds the counts
//! it returns to the self-metrics.

use memchr::{memchr, memchr_iter, memrchr};

/// What one call saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LineStats {
    /// Complete lines, including skipped over-long ones.
    pub lines: u64,
    /// Lines longer than the cap, skipped.
    pub too_long: u64,
    /// Lines that were not valid UTF-8 (repaired with U+FFFD and processed).
    pub invalid_utf8: u64,
}

/// Turns chunks of bytes into lines (without the `\n`, and without a `\r` before it).
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// Inside a line that is already over the cap: drop bytes until its newline.
    skipping: bool,
    max_line_length: usize,
    /// Bytes consumed since the last newline (held or skipped): the reader's offset minus this
    /// is the end of the last complete line, where a restart resumes.
    pending: u64,
}

impl LineSplitter {
    /// A splitter that skips lines longer than `max_line_length` bytes.
    pub fn new(max_line_length: usize) -> LineSplitter {
        LineSplitter {
            partial: Vec::new(),
            skipping: false,
            max_line_length,
            pending: 0,
        }
    }

    /// Bytes consumed since the last complete line (held in a partial line, or skipped).
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// Whether the current line is being skipped (over the cap, or started before the reader).
    pub fn is_skipping(&self) -> bool {
        self.skipping
    }

    /// Changes the cap for lines still to come.
    pub fn set_max_line_length(&mut self, max_line_length: usize) {
        self.max_line_length = max_line_length;
    }

    /// Drops everything up to the next newline (used when starting in the middle of a line).
    pub fn skip_to_next_line(&mut self) {
        self.partial = Vec::new();
        self.skipping = true;
    }

    /// Forgets any partial line (after a truncation).
    pub fn reset(&mut self) {
        self.partial = Vec::new();
        self.skipping = false;
        self.pending = 0;
    }

    /// Feeds a chunk; `emit` gets every line it completes, and the number of bytes of
    /// `data` up to and including that line's newline.
    pub fn push(&mut self, data: &[u8], emit: impl FnMut(&str, usize)) -> LineStats {
        match memrchr(b'\n', data) {
            Some(i) => self.pending = (data.len() - i - 1) as u64,
            None => self.pending += data.len() as u64,
        }
        self.split(data, emit)
    }

    fn split(&mut self, data: &[u8], mut emit: impl FnMut(&str, usize)) -> LineStats {
        let mut stats = LineStats::default();
        let mut rest = data;
        // Where `rest` starts in `data`.
        let mut base = 0;
        if self.skipping || !self.partial.is_empty() {
            let Some(nl) = memchr(b'\n', rest) else {
                self.hold(rest, &mut stats);
                return stats;
            };
            self.hold(&rest[..nl], &mut stats);
            stats.lines += 1;
            if !self.skipping {
                let line = std::mem::take(&mut self.partial);
                emit_bytes(&line, &mut |l| emit(l, nl + 1), &mut stats);
                self.partial = line;
            }
            self.partial.clear();
            self.skipping = false;
            rest = &rest[nl + 1..];
            base = nl + 1;
        }
        let (complete, tail) = match memrchr(b'\n', rest) {
            Some(i) => rest.split_at(i + 1),
            None => (&[][..], rest),
        };
        if !complete.is_empty() {
            let max = self.max_line_length;
            // UTF-8 checked by `simdutf8` (vector instructions where the CPU has them, as
            // `std::str::from_utf8` has not); its error says nothing: the slow path finds it.
            match simdutf8::basic::from_utf8(complete) {
                // The common case: the whole chunk is valid, split it as text.
                // (The newlines are found by the memchr crate's vector search: `str`'s own
                // `split` finds them a byte at a time, most of the cost of a short line.)
                Ok(text) => {
                    let mut start = 0;
                    for nl in memchr_iter(b'\n', complete) {
                        // A newline is ASCII: both ends are character boundaries.
                        let line = &text[start..nl];
                        start = nl + 1;
                        let end = base + start;
                        stats.lines += 1;
                        if line.len() > max {
                            stats.too_long += 1;
                        } else {
                            emit(line.strip_suffix('\r').unwrap_or(line), end);
                        }
                    }
                }
                Err(_) => {
                    let mut end = base;
                    for line in complete[..complete.len() - 1].split(|b| *b == b'\n') {
                        stats.lines += 1;
                        end += line.len() + 1;
                        if line.len() > max {
                            stats.too_long += 1;
                        } else {
                            emit_bytes(line, &mut |l| emit(l, end), &mut stats);
                        }
                    }
                }
            }
        }
        self.hold(tail, &mut stats);
        stats
    }

    /// Ends the stream: a held partial line is a line after all (a file that ends without a
    /// newline, or one that was deleted).
    pub fn finish(&mut self, mut emit: impl FnMut(&str)) -> LineStats {
        let mut stats = LineStats::default();
        if !self.skipping && !self.partial.is_empty() {
            stats.lines += 1;
            let line = std::mem::take(&mut self.partial);
            emit_bytes(&line, &mut emit, &mut stats);
        }
        self.reset();
        stats
    }

    /// Ends the stream without counting a held partial line (content replaced: its rest is
    /// not coming).
    pub fn abandon(&mut self) {
        self.reset();
    }

    fn hold(&mut self, bytes: &[u8], stats: &mut LineStats) {
        if self.skipping || bytes.is_empty() {
            return;
        }
        if self.partial.len() + bytes.len() > self.max_line_length {
            stats.too_long += 1;
            self.skip_to_next_line();
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }
}

fn emit_bytes(line: &[u8], emit: &mut dyn FnMut(&str), stats: &mut LineStats) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(text) => emit(text),
        Err(_) => {
            stats.invalid_utf8 += 1;
            emit(&String::from_utf8_lossy(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(max: usize, chunks: &[&[u8]], finish: bool) -> (Vec<String>, LineStats) {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        let mut total = LineStats::default();
        let mut add = |st: LineStats| {
            total.lines += st.lines;
            total.too_long += st.too_long;
            total.invalid_utf8 += st.invalid_utf8;
        };
        for c in chunks {
            let st = s.push(c, |l, _| out.push(l.to_owned()));
            add(st);
        }
        if finish {
            let st = s.finish(|l| out.push(l.to_owned()));
            add(st);
        }
        (out, total)
    }

    #[test]
    fn holds_partial_lines_until_their_newline() {
        let (lines, st) = run(100, &[b"ab", b"c\nde", b"f\r\n", b"g"], false);
        assert_eq!(lines, ["abc", "def"]);
        assert_eq!(st.lines, 2);
        let (lines, _) = run(100, &[b"ab", b"c\nde", b"f\r\n", b"g"], true);
        assert_eq!(lines, ["abc", "def", "g"]);
    }

    #[test]
    fn skips_long_lines_whole_and_keeps_memory_flat() {
        let long = vec![b'x'; 50];
        let (lines, st) = run(10, &[b"ok\n", &long, &long, b"tail\nnext\n"], false);
        assert_eq!(lines, ["ok", "next"]);
        assert_eq!(
            st,
            LineStats {
                lines: 3,
                too_long: 1,
                invalid_utf8: 0
            }
        );
        let (lines, st) = run(10, &[b"0123456789ABC\nshort\n"], false);
        assert_eq!(lines, ["short"]);
        assert_eq!(st.too_long, 1);
    }

    #[test]
    fn repairs_invalid_utf8() {
        let (lines, st) = run(100, &[b"caf\xe9 ok\nfine\n"], false);
        assert_eq!(lines, ["caf\u{fffd} ok", "fine"]);
        assert_eq!(st.invalid_utf8, 1);
        // Split in the middle of a valid multi-byte character across chunks.
        let (lines, st) = run(100, &[b"caf\xc3", b"\xa9\n"], false);
        assert_eq!(lines, ["café"]);
        assert_eq!(st.invalid_utf8, 0);
    }

    #[test]
    fn pending_counts_bytes_since_the_last_newline() {
        let mut s = LineSplitter::new(4);
        s.push(b"ab", |_, _| {});
        assert_eq!(s.pending(), 2);
        s.push(b"c\nde", |_, _| {});
        assert_eq!(s.pending(), 2);
        s.push(b"fghij", |_, _| {}); // over the cap: skipped, still pending
        assert_eq!((s.pending(), s.is_skipping()), (7, true));
        s.push(b"k\n", |_, _| {});
        assert_eq!((s.pending(), s.is_skipping()), (0, false));
    }

    #[test]
    fn skip_to_next_line_drops_a_fragment() {
        let mut s = LineSplitter::new(100);
        s.skip_to_next_line();
        let mut out = Vec::new();
        let st = s.push(b"gment\nwhole\n", |l, _| out.push(l.to_owned()));
        assert_eq!(out, ["whole"]);
        assert_eq!(st.lines, 2);
    }

    #[test]
    fn each_line_comes_with_the_end_of_its_newline_in_the_chunk() {
        let mut s = LineSplitter::new(4);
        let mut out = Vec::new();
        s.push(b"ab", |l, e| out.push((l.to_owned(), e)));
        s.push(b"c\r\nd\ntoolong\n\xffx\ne", |l, e| {
            out.push((l.to_owned(), e))
        });
        assert_eq!(
            out,
            [
                ("abc".to_owned(), 3),
                ("d".to_owned(), 5),
                ("\u{fffd}x".to_owned(), 16),
            ]
        );
        assert_eq!(s.pending(), 1);
    }
}
