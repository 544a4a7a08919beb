//! Where a reply on a socket ends: the pure framing engine of the socket source.
//!
//! A [`Framer`] is handed the bytes a step has received so far (and whether the peer has
//! closed its side) and answers [`Progress::Complete`] (where the reply lies in those bytes and
//! how many of them the step consumed), [`Progress::NeedMore`], or [`Progress::Failed`] with a
//! [`FrameError`]. It does no I/O and knows no clock, so every rule is tested from byte strings
//! and fuzzed (`fuzz/fuzz_targets/socket_framing.rs`); the conversation runner only reads,
//! asks and acts. A framer remembers how far it has looked, so a reply dripping in byte by
//! byte is scanned once, not once per byte.

use std::ops::Range;

use memchr::memmem;
use regex::bytes::Regex;

/// How far back from the end of what was received a prompt is looked for.
pub const PROMPT_WINDOW: usize = 4096;
/// The longest a length header may be before the reply counts as not having one.
pub const HEADER_MAX: usize = 256;
/// How much of a reply an error message shows.
const SHOWN_MAX: usize = 120;
/// How much of a reply's first line a [`FrameError::BadHeader`] keeps: more than is shown, so
/// that a secret crossing the cut is still whole when it is redacted.
pub const BAD_HEADER_KEPT: usize = 64 * 1024;

/// How a step's reply ends.
#[derive(Debug, Clone)]
pub enum Framing {
    /// When the peer closes the connection; the reply is everything it sent.
    Closed,
    /// When the step's timeout passes; the reply is whatever arrived by then (or everything,
    /// if the peer closes first).
    Timeout,
    /// At the first empty line (`\n\n`, or `\r\n\r\n`); the reply is what precedes it.
    EmptyLine,
    /// At the first occurrence of these bytes (e.g. memcached's `END\r\n`); the reply is what
    /// precedes them.
    Terminator(Vec<u8>),
    /// When the bytes received so far end with a match of this regex (a prompt such as
    /// `\n> `), looked for within the last [`PROMPT_WINDOW`] bytes. Compile it with
    /// [`Framing::prompt`]. The reply is what precedes the match.
    Prompt(Regex),
    /// After exactly this many bytes.
    Length(usize),
    /// A header at the start whose first capture group is the decimal length of the body that
    /// follows it, and `trailer` more bytes after the body (Redis' `$<n>\r\n` … `\r\n`).
    /// Compile it with [`Framing::length_header`]. The reply is the body.
    LengthHeader {
        /// Anchored at the start of the reply.
        header: Regex,
        /// Bytes after the body that belong to the reply's framing.
        trailer: usize,
    },
}

impl Framing {
    /// A prompt framing: `pattern` must match at the very end of what was received.
    pub fn prompt(pattern: &str) -> Result<Framing, regex::Error> {
        // Alone first, so that an error shows the pattern as written.
        Regex::new(pattern)?;
        Ok(Framing::Prompt(Regex::new(&format!("(?:{pattern})\\z"))?))
    }

    /// A length-header framing; `pattern` is anchored at the start of the reply and needs a
    /// first capture group (the body's length).
    pub fn length_header(pattern: &str, trailer: usize) -> Result<Framing, String> {
        Regex::new(pattern).map_err(|e| format!("invalid regex: {e}"))?;
        let header = Regex::new(&format!("\\A(?:{pattern})")).map_err(|e| e.to_string())?;
        if header.captures_len() < 2 {
            return Err(format!(
                "the length header {pattern:?} needs a capture group for the length, e.g. '\\$(\\d+)\\r\\n'"
            ));
        }
        Ok(Framing::LengthHeader { header, trailer })
    }
}

/// A reply found in the bytes a step received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Where the reply (without its framing bytes) lies.
    pub reply: Range<usize>,
    /// How many bytes the step used up; what follows belongs to the next step.
    pub consumed: usize,
}

/// Why a reply cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The peer closed the connection before the reply's end (`received` bytes came).
    ClosedEarly { received: usize },
    /// The reply is (or says it will be) longer than the cap.
    TooLarge { max: usize },
    /// The reply does not start with its length header; `start` is its first line (at most
    /// [`BAD_HEADER_KEPT`] bytes), raw: whoever shows it redacts secrets first, then cuts
    /// it with [`shown`].
    BadHeader { start: Vec<u8> },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::ClosedEarly { received } => write!(
                f,
                "the connection was closed before the reply ended ({received} bytes received)"
            ),
            FrameError::TooLarge { max } => {
                write!(f, "the reply is larger than the cap of {max} bytes")
            }
            FrameError::BadHeader { start } => {
                write!(
                    f,
                    "the reply does not start with its length header: {}",
                    shown(start)
                )
            }
        }
    }
}

/// What a [`Framer`] says about the bytes received so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The reply is complete.
    Complete(Frame),
    /// More bytes are needed (or, for [`Framing::Timeout`], the timeout).
    NeedMore,
    /// The reply can never be framed.
    Failed(FrameError),
}

/// The framing of one step's reply, applied to a growing buffer.
#[derive(Debug)]
pub struct Framer<'a> {
    framing: &'a Framing,
    max: usize,
    /// Bytes already looked at without finding the end (terminators, empty lines).
    scanned: usize,
}

impl<'a> Framer<'a> {
    /// A framer for a reply of at most `max` bytes, framing bytes included.
    pub fn new(framing: &'a Framing, max: usize) -> Framer<'a> {
        Framer {
            framing,
            max,
            scanned: 0,
        }
    }

    /// Looks at `received` (everything the step has received, a prefix of what the next call
    /// gets); `closed` says the peer will send nothing more.
    pub fn check(&mut self, received: &[u8], closed: bool) -> Progress {
        let found = match self.framing {
            Framing::Closed | Framing::Timeout => closed.then_some(Frame {
                reply: 0..received.len(),
                consumed: received.len(),
            }),
            Framing::EmptyLine => self.empty_line(received),
            Framing::Terminator(terminator) => self.terminator(received, terminator),
            Framing::Prompt(prompt) => {
                let from = received.len().saturating_sub(PROMPT_WINDOW);
                prompt.find(&received[from..]).map(|m| Frame {
                    reply: 0..from + m.start(),
                    consumed: received.len(),
                })
            }
            Framing::Length(n) => {
                if *n > self.max {
                    return Progress::Failed(FrameError::TooLarge { max: self.max });
                }
                (received.len() >= *n).then_some(Frame {
                    reply: 0..*n,
                    consumed: *n,
                })
            }
            Framing::LengthHeader { header, trailer } => {
                match self.length_header(received, header, *trailer, closed) {
                    Ok(found) => found,
                    Err(e) => return Progress::Failed(e),
                }
            }
        };
        match found {
            Some(frame) if frame.consumed > self.max => {
                Progress::Failed(FrameError::TooLarge { max: self.max })
            }
            Some(frame) => Progress::Complete(frame),
            // Every later end would consume more than has come: past the cap already.
            None if received.len() > self.max => {
                Progress::Failed(FrameError::TooLarge { max: self.max })
            }
            None if closed => Progress::Failed(FrameError::ClosedEarly {
                received: received.len(),
            }),
            None => Progress::NeedMore,
        }
    }

    /// What [`Framing::Timeout`] makes of the step's timeout: the reply so far. `None` for
    /// every other framing (the timeout is then a failure).
    pub fn at_timeout(&self, received: &[u8]) -> Option<Frame> {
        match self.framing {
            Framing::Timeout if received.len() <= self.max => Some(Frame {
                reply: 0..received.len(),
                consumed: received.len(),
            }),
            _ => None,
        }
    }

    fn terminator(&mut self, received: &[u8], terminator: &[u8]) -> Option<Frame> {
        if terminator.is_empty() {
            return Some(Frame {
                reply: 0..0,
                consumed: 0,
            });
        }
        // A terminator may straddle what was scanned and what is new.
        let from = self.scanned.saturating_sub(terminator.len() - 1);
        match memmem::find(&received[from..], terminator) {
            Some(at) => Some(Frame {
                reply: 0..from + at,
                consumed: from + at + terminator.len(),
            }),
            None => {
                self.scanned = received.len();
                None
            }
        }
    }

    fn empty_line(&mut self, received: &[u8]) -> Option<Frame> {
        // `scanned` is kept at the start of a line not yet complete.
        let base = self.scanned;
        let mut line_start = base;
        for newline in memchr::memchr_iter(b'\n', &received[base..]) {
            let end = base + newline;
            let line = &received[line_start..end];
            if line.is_empty() || line == b"\r" {
                return Some(Frame {
                    reply: 0..line_start,
                    consumed: end + 1,
                });
            }
            line_start = end + 1;
        }
        self.scanned = line_start;
        None
    }

    fn length_header(
        &self,
        received: &[u8],
        header: &Regex,
        trailer: usize,
        closed: bool,
    ) -> Result<Option<Frame>, FrameError> {
        let Some(captures) = header.captures(received) else {
            let first_line_done = received[..received.len().min(HEADER_MAX)].contains(&b'\n');
            if first_line_done || received.len() > HEADER_MAX || (closed && !received.is_empty()) {
                return Err(FrameError::BadHeader {
                    start: first_line(received, BAD_HEADER_KEPT).to_vec(),
                });
            }
            return Ok(None);
        };
        let whole = captures.get(0).expect("group 0 always matches");
        let length = captures
            .get(1)
            .and_then(|g| std::str::from_utf8(g.as_bytes()).ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .ok_or_else(|| FrameError::BadHeader {
                start: first_line(received, BAD_HEADER_KEPT).to_vec(),
            })?;
        let body_end = (whole.end() as u64).saturating_add(length);
        let consumed = body_end.saturating_add(trailer as u64);
        if consumed > self.max as u64 {
            // Said in the header: no need to wait for the bytes.
            return Err(FrameError::TooLarge { max: self.max });
        }
        let (body_end, consumed) = (body_end as usize, consumed as usize);
        Ok((received.len() >= consumed).then(|| Frame {
            reply: whole.end()..body_end,
            consumed,
        }))
    }
}

/// The start of a reply for an error message: its first line, at most [`SHOWN_MAX`] bytes,
/// quoted with control and non-ASCII bytes escaped.
/// Secrets are redacted before, not after: see `SecretValues::shown`.
pub fn shown(received: &[u8]) -> String {
    let line = first_line(received, usize::MAX);
    let cut = &line[..line.len().min(SHOWN_MAX)];
    let more = if line.len() > SHOWN_MAX { "…" } else { "" };
    format!("\"{}{more}\"", cut.escape_ascii())
}

/// The first line of `received` (without its `\r\n`), at most `max` bytes of it.
pub fn first_line(received: &[u8], max: usize) -> &[u8] {
    let line = received.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    &line[..line.len().min(max)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another, as reads would deliver them, then a close if
    /// `close`; returns what the framer said last.
    fn feed(framing: &Framing, max: usize, chunks: &[&[u8]], close: bool) -> (Progress, Vec<u8>) {
        let mut framer = Framer::new(framing, max);
        let mut received = Vec::new();
        for chunk in chunks {
            received.extend_from_slice(chunk);
            match framer.check(&received, false) {
                Progress::NeedMore => {}
                done => return (done, received),
            }
        }
        let last = if close {
            framer.check(&received, true)
        } else {
            Progress::NeedMore
        };
        (last, received)
    }

    fn reply(framing: &Framing, chunks: &[&[u8]], close: bool) -> (Vec<u8>, usize) {
        match feed(framing, 1 << 20, chunks, close) {
            (Progress::Complete(frame), received) => {
                (received[frame.reply.clone()].to_vec(), frame.consumed)
            }
            (other, _) => panic!("not complete: {other:?}"),
        }
    }

    fn drip(bytes: &[u8]) -> Vec<&[u8]> {
        bytes.chunks(1).collect()
    }

    #[test]
    fn closed_ends_at_the_close_and_keeps_everything() {
        let framing = Framing::Closed;
        assert_eq!(
            feed(&framing, 100, &[b"a\n", b"b"], false).0,
            Progress::NeedMore
        );
        assert_eq!(
            reply(&framing, &[b"a\n", b"b"], true),
            (b"a\nb".to_vec(), 3)
        );
        // Nothing at all before the close is an empty reply, not an error.
        assert_eq!(reply(&framing, &[], true), (Vec::new(), 0));
    }

    #[test]
    fn a_terminator_is_found_across_chunk_boundaries_and_leaves_what_follows() {
        let framing = Framing::Terminator(b"END\r\n".to_vec());
        let whole = b"STAT pid 1\r\nSTAT uptime 5\r\nEND\r\nnext";
        for chunks in [
            vec![&whole[..]],
            drip(whole),
            vec![&whole[..29], &whole[29..]],
        ] {
            assert_eq!(
                reply(&framing, &chunks, false),
                (b"STAT pid 1\r\nSTAT uptime 5\r\n".to_vec(), 32)
            );
        }
        // The first occurrence ends the reply.
        assert_eq!(
            reply(&framing, &[b"END\r\nEND\r\n"], false),
            (Vec::new(), 5)
        );
    }

    #[test]
    fn a_missing_terminator_is_a_close_too_early() {
        let framing = Framing::Terminator(b"END\r\n".to_vec());
        assert_eq!(
            feed(&framing, 100, &[b"STAT pid 1\r\nEN"], true).0,
            Progress::Failed(FrameError::ClosedEarly { received: 14 })
        );
    }

    #[test]
    fn an_empty_line_ends_the_reply_with_either_line_ending() {
        let framing = Framing::EmptyLine;
        assert_eq!(
            reply(&framing, &drip(b"a,b\n1,2\n\nrest"), false),
            (b"a,b\n1,2\n".to_vec(), 9)
        );
        assert_eq!(
            reply(&framing, &drip(b"k:v\r\n\r\n"), false),
            (b"k:v\r\n".to_vec(), 7)
        );
        // An empty line first is an empty reply.
        assert_eq!(reply(&framing, &[b"\r\nx"], false), (Vec::new(), 2));
        // A line that is only spaces is not empty.
        assert_eq!(
            feed(&framing, 100, &[b"a\n \n"], false).0,
            Progress::NeedMore
        );
    }

    #[test]
    fn a_prompt_ends_the_reply_only_at_the_end_of_what_came() {
        let framing = Framing::prompt(r"\n> ").unwrap();
        // "> " in the middle is not the prompt: more came after it.
        assert_eq!(
            feed(&framing, 100, &[b"a\n> b\n"], false).0,
            Progress::NeedMore
        );
        assert_eq!(
            reply(&framing, &[b"a\n> b\n", b"c\n> "], false),
            (b"a\n> b\nc".to_vec(), 10)
        );
        // Looked for only near the end: a long reply costs no rescans of its start.
        let long = [vec![b'x'; 3 * PROMPT_WINDOW], b"\n> ".to_vec()].concat();
        assert_eq!(reply(&framing, &[&long], false).0.len(), 3 * PROMPT_WINDOW);
    }

    #[test]
    fn a_length_takes_exactly_that_many_bytes() {
        let framing = Framing::Length(4);
        assert_eq!(feed(&framing, 100, &[b"abc"], false).0, Progress::NeedMore);
        assert_eq!(
            reply(&framing, &drip(b"abcdef"), false),
            (b"abcd".to_vec(), 4)
        );
        assert_eq!(
            feed(&framing, 100, &[b"abc"], true).0,
            Progress::Failed(FrameError::ClosedEarly { received: 3 })
        );
        // Zero bytes is complete before any read (the fuzz target's first finding was its
        // own harness not asking before the first read, as the runner does).
        assert_eq!(
            Framer::new(&Framing::Length(0), 100).check(b"", false),
            Progress::Complete(Frame {
                reply: 0..0,
                consumed: 0
            })
        );
        // A length over the cap fails before a byte is read.
        assert_eq!(
            Framer::new(&Framing::Length(101), 100).check(b"", false),
            Progress::Failed(FrameError::TooLarge { max: 100 })
        );
    }

    #[test]
    fn a_length_header_frames_a_redis_bulk_reply() {
        let framing = Framing::length_header(r"\$(\d+)\r\n", 2).unwrap();
        let whole = b"$11\r\n# Server\r\nx\r\n+OK\r\n";
        assert_eq!(
            reply(&framing, &drip(whole), false),
            (b"# Server\r\nx".to_vec(), 18)
        );
        // The body may contain anything, header-like text and empty lines included.
        assert_eq!(
            reply(&framing, &[b"$5\r\n$1\r\n\n\r\n"], false),
            (b"$1\r\n\n".to_vec(), 11)
        );
    }

    #[test]
    fn a_reply_without_its_length_header_is_shown_in_the_error() {
        let framing = Framing::length_header(r"\$(\d+)\r\n", 2).unwrap();
        assert_eq!(
            feed(
                &framing,
                100,
                &[b"-NOAUTH Authentication required.\r\n"],
                false
            )
            .0,
            Progress::Failed(FrameError::BadHeader {
                start: b"-NOAUTH Authentication required.".to_vec()
            })
        );
        // A header still arriving is waited for.
        assert_eq!(feed(&framing, 100, &[b"$12"], false).0, Progress::NeedMore);
        // A header that never ends its line is refused once it is too long for one.
        let junk = vec![0xffu8; HEADER_MAX + 1];
        assert!(matches!(
            feed(&framing, 1000, &[&junk], false).0,
            Progress::Failed(FrameError::BadHeader { start }) if start.starts_with(b"\xff\xff")
        ));
        // A length that overflows is not a length.
        assert!(matches!(
            feed(&framing, 100, &[b"$99999999999999999999999\r\n"], false).0,
            Progress::Failed(FrameError::BadHeader { .. })
        ));
        assert!(Framing::length_header(r"\$\d+\r\n", 2).is_err());
    }

    #[test]
    fn a_length_header_over_the_cap_fails_without_waiting_for_the_body() {
        let framing = Framing::length_header(r"\$(\d+)\r\n", 2).unwrap();
        assert_eq!(
            feed(&framing, 100, &[b"$1000\r\n"], false).0,
            Progress::Failed(FrameError::TooLarge { max: 100 })
        );
        // The cap counts the framing bytes too.
        assert_eq!(
            feed(&framing, 100, &[b"$94\r\n"], false).0,
            Progress::Failed(FrameError::TooLarge { max: 100 })
        );
        assert_eq!(
            feed(&framing, 100, &[b"$93\r\n"], false).0,
            Progress::NeedMore
        );
    }

    #[test]
    fn a_reply_past_the_cap_fails_as_soon_as_the_cap_is_passed() {
        for framing in [
            Framing::Closed,
            Framing::EmptyLine,
            Framing::Terminator(b"END".to_vec()),
            Framing::prompt("> ").unwrap(),
        ] {
            assert_eq!(
                feed(&framing, 10, &[b"0123456789", b"a"], false).0,
                Progress::Failed(FrameError::TooLarge { max: 10 }),
                "{framing:?}"
            );
        }
        // A terminator found past the cap is past the cap too.
        assert_eq!(
            feed(
                &Framing::Terminator(b"END".to_vec()),
                10,
                &[b"0123456789END"],
                false
            )
            .0,
            Progress::Failed(FrameError::TooLarge { max: 10 })
        );
        // Exactly the cap is allowed.
        assert_eq!(
            feed(&Framing::Closed, 10, &[b"0123456789"], true).0,
            Progress::Complete(Frame {
                reply: 0..10,
                consumed: 10
            })
        );
    }

    #[test]
    fn the_timeout_framing_takes_what_came_and_others_fail_at_the_timeout() {
        let framer = Framer::new(&Framing::Timeout, 10);
        assert_eq!(
            framer.at_timeout(b"partial"),
            Some(Frame {
                reply: 0..7,
                consumed: 7
            })
        );
        assert_eq!(framer.at_timeout(b"01234567890"), None);
        let terminator = Framing::Terminator(b"END".to_vec());
        assert_eq!(Framer::new(&terminator, 10).at_timeout(b"partial"), None);
        // A close before the timeout ends the reply too.
        assert_eq!(
            reply(&Framing::Timeout, &[b"ab"], true),
            (b"ab".to_vec(), 2)
        );
    }

    #[test]
    fn binary_junk_is_framed_like_any_bytes() {
        let junk: Vec<u8> = (0..=255u8).chain([0, 0xff, b'\r']).collect();
        let with_end = [junk.clone(), b"END\r\n".to_vec()].concat();
        let framing = Framing::Terminator(b"END\r\n".to_vec());
        assert_eq!(reply(&framing, &[&with_end], false).0, junk);
        assert_eq!(shown(b"\x00\x1b[31mred\r\nmore"), "\"\\x00\\x1b[31mred\"");
        let long = vec![b'a'; 200];
        assert_eq!(shown(&long), format!("\"{}…\"", "a".repeat(120)));
    }
}
