//! What a file's content is, independent of its name and inode: digests of its first bytes (the
//! head) and of the bytes just before a read offset (the marker), and the record of content the
//! tailer has read up to some offset.
//!
//! An inode says which file a path names *now*; content says whether a file is one already
//! read: a copy of it (`copytruncate`'s `access.log.1`), the same file after a restart, or a new
//! file that merely reuses a freed inode. A copy holds the same head and, at the offset read
//! so far, the same marker; a new file holds neither. Digests are SHA-256 (ring), so nobody who
//! writes log lines can make two contents look alike, and records stay small in checkpoints.

use std::io;
use std::path::Path;

use super::fs::{FileId, Handle};
use super::records::Replay;

/// Bytes at the start of a file that make its head.
pub const HEAD_LEN: u64 = 512;
/// Bytes before an offset that make its marker.
pub const MARKER_LEN: u64 = 256;

/// A SHA-256 of some bytes, with how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Digest {
    pub len: u32,
    pub sha: [u8; 32],
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        let d = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut sha = [0u8; 32];
        sha.copy_from_slice(d.as_ref());
        Digest {
            len: bytes.len() as u32,
            sha,
        }
    }
}

/// Reads `[start, start + len)` of `h` whole (short only at the end of the file).
pub fn read_range<H: Handle>(h: &H, start: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut got = 0;
    while got < buf.len() {
        let n = h.read_at(start + got as u64, &mut buf[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// The head of a file whose size is `size`: its first `min(size, HEAD_LEN)` bytes.
pub fn head<H: Handle>(h: &H, size: u64) -> io::Result<Digest> {
    Ok(Digest::of(&read_range(h, 0, size.min(HEAD_LEN))?))
}

/// The marker at `offset`: the `min(offset, MARKER_LEN)` bytes before it.
pub fn marker<H: Handle>(h: &H, offset: u64) -> io::Result<Digest> {
    let len = offset.min(MARKER_LEN);
    let bytes = read_range(h, offset - len, len)?;
    if (bytes.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shorter than the offset",
        ));
    }
    Ok(Digest::of(&bytes))
}

/// Whether `h` (of size `size`) starts with the bytes `head` digests.
pub fn starts_with<H: Handle>(h: &H, size: u64, head: &Digest) -> io::Result<bool> {
    if size < head.len as u64 {
        return Ok(false);
    }
    Ok(Digest::of(&read_range(h, 0, head.len as u64)?) == *head)
}

/// Whether the file (of `size` bytes) starts with `head`: the same answer as [`starts_with`]
/// on `head`'s digest, without hashing (a followed file is checked each time it grows).
pub fn starts_with_bytes<H: Handle>(h: &H, size: u64, head: &[u8]) -> io::Result<bool> {
    if size < head.len() as u64 {
        return Ok(false);
    }
    begins_with(h, head)
}

/// Whether the file's first bytes now are `head` (false when it is shorter), read into a
/// buffer on the stack: a followed file's head is checked on each read, before and after.
pub fn begins_with<H: Handle>(h: &H, head: &[u8]) -> io::Result<bool> {
    let mut buf = [0u8; HEAD_LEN as usize];
    if head.len() > buf.len() {
        return Ok(read_range(h, 0, head.len() as u64)? == head);
    }
    let buf = &mut buf[..head.len()];
    let mut got = 0;
    while got < buf.len() {
        match h.read_at(got as u64, &mut buf[got..])? {
            0 => return Ok(false),
            n => got += n,
        }
    }
    Ok(buf == head)
}

/// Content read up to `offset`: enough to recognise it in another file (a copy, the same file
/// after a restart) and to go on reading there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// Where it was last seen.
    pub path: String,
    pub id: FileId,
    /// Digest of its first `min(size, HEAD_LEN)` bytes, as last seen.
    pub head: Digest,
    /// Those bytes themselves: a copy shorter than the offset read (logrotate copied, the
    /// original grew and was read further, then truncated) is told by its first bytes.
    pub first: Vec<u8>,
    /// The content was truncated (or found replaced in its inode after a restart): a copy
    /// of it may have been taken before all of it was read.
    pub truncated: bool,
    /// Bytes read: every complete line before this was counted.
    pub offset: u64,
    /// Digest of the bytes before `offset`.
    pub marker: Digest,
    /// With several streams in the file and a record held at `offset`: which lines after
    /// `offset` are held (to be read again) and which were counted.
    pub replay: Option<Replay>,
}

impl Known {
    /// Whether the file `h` (of size `size`) holds this content up to `offset` (it may hold
    /// more): same head, at least `offset` bytes, and the same bytes before `offset`.
    pub fn continues_in<H: Handle>(&self, h: &H, size: u64) -> bool {
        if size < self.offset {
            return false;
        }
        let head = if size >= self.head.len as u64 {
            starts_with(h, size, &self.head).unwrap_or(false)
        } else {
            // Shorter than the head as it was seen (it had grown past what was read): its
            // bytes are compared with those first bytes — all of what was read must be there.
            let read = self.offset.max(self.replay.as_ref().map_or(0, |r| r.until));
            size >= read
                && read > 0
                && self.first.len() as u64 > size
                && read_range(h, 0, size).is_ok_and(|b| b[..] == self.first[..size as usize])
        };
        head && marker(h, self.offset).is_ok_and(|m| m == self.marker)
    }

    /// Whether `h` (of size `size`, shorter than the offset read) is a copy of this content
    /// taken before all of it was read: a related file that starts with the same bytes (all
    /// of its own when it is shorter than a head), made before the content was truncated.
    /// Its end cannot be compared (only the bytes before `offset` are known), so this is
    /// asked only of content that was truncated or went away, for a file that was not known
    /// before.
    pub fn copied_before_offset<H: Handle>(&self, h: &H, size: u64) -> bool {
        if !self.truncated || size == 0 || size >= self.offset || self.first.is_empty() {
            return false;
        }
        let n = (self.first.len() as u64).min(size);
        // At least one whole line alike.
        read_range(h, 0, n).is_ok_and(|b| b[..] == self.first[..n as usize] && b.contains(&b'\n'))
    }

    /// Whether anything was read (content to recognise): lines before `offset`, or after it
    /// (other streams' records, with a record held at `offset`).
    pub fn has_content(&self) -> bool {
        (self.offset > 0 || self.replay.is_some()) && self.head.len > 0
    }
}

/// The part of a file name that rotations keep: the name up to its first `.`, without a
/// trailing `-<digits>` or `_<digits>` (`access.log.1`, `access.log-20261128.gz` and
/// `access-20261128.log` all give `access`). Bytes, not text: what it looks for is ASCII, which
/// is never part of a longer UTF-8 character.
fn rotation_base(name: &[u8]) -> &[u8] {
    let stem = name.split(|&b| b == b'.').next().unwrap_or_default();
    let digits = stem.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let trimmed = &stem[..stem.len() - digits];
    match trimmed.split_last() {
        Some((b'-' | b'_', base)) if digits > 0 && !base.is_empty() => base,
        _ => stem,
    }
}

/// Whether two files' names could be one file and its rotation (content is matched across
/// files only then: two logs of different applications that happen to start alike, a CSV
/// header say, are never taken for copies of each other). Files of the same name in two
/// directories are two logs (every pod's `0.log`, `site-a/app.log` and `site-b/app.log`): a
/// rotation renames (`app.log.1`, `app.log-20261206`), also into another directory (logrotate's
/// `olddir`), so one of the two names is a rotated one.
pub fn related(a: &Path, b: &Path) -> bool {
    RelatedTo::new(b).of(a)
}

/// [`related`] asked of many files about one (`b`, a file being decided on, against every
/// file followed or remembered): `b`'s side made once.
pub struct RelatedTo<'a> {
    b: &'a Path,
    /// `b` split on its last slash, when it reads as written (see [`plain_split`]).
    split: Option<(&'a [u8], &'a [u8])>,
}

impl<'a> RelatedTo<'a> {
    /// Questions about `b`.
    pub fn new(b: &'a Path) -> RelatedTo<'a> {
        RelatedTo {
            b,
            split: plain_split(b),
        }
    }

    /// Whether `a` and `b` could be one file and its rotation ([`related`]).
    pub fn of(&self, a: &Path) -> bool {
        let b = self.b;
        // Every file of a node is asked about every new one: paths as listed (a directory,
        // a slash, a name) are split on their last slash instead of parsed component by
        // component.
        let (same_name_elsewhere, a_name, b_name) = match (plain_split(a), self.split) {
            (Some((a_dir, a_name)), Some((b_dir, b_name))) => {
                (a_name == b_name && a_dir != b_dir, a_name, b_name)
            }
            _ => {
                let elsewhere = a.file_name() == b.file_name() && a.parent() != b.parent();
                (elsewhere, file_name_bytes(a), file_name_bytes(b))
            }
        };
        !same_name_elsewhere && rotation_base(a_name) == rotation_base(b_name)
    }
}

/// A path's last component as bytes (empty when it has none).
fn file_name_bytes(p: &Path) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    p.file_name().map(|n| n.as_bytes()).unwrap_or_default()
}

/// A path's directory and name split on its last slash, for a path the way a listing joins
/// them (`None` for anything `Path` would read otherwise: no slash, a trailing slash, a `.`
/// or `..` name, a doubled slash or a `/./` that `Path` leaves out when comparing).
fn plain_split(p: &Path) -> Option<(&[u8], &[u8])> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = p.as_os_str().as_bytes();
    let slash = memchr::memrchr(b'/', bytes)?;
    let (dir, name) = (&bytes[..slash], &bytes[slash + 1..]);
    let odd = name.is_empty()
        || name == b"."
        || name == b".."
        || dir.is_empty()
        || dir.ends_with(b"/")
        || dir.ends_with(b"/.")
        || dir == b"."
        || dir.starts_with(b"./")
        // A doubled slash or a `/./` inside, by searchers built once (one built per call, a
        // look at every byte, or a look after each slash cost more: this runs for every
        // followed file each time a new one is decided on, 125,000 times when a node of 500
        // files starts).
        || ODD_INSIDE.iter().any(|f| f.find(dir).is_some());
    (!odd).then_some((dir, name))
}

/// What makes a directory's bytes name it otherwise than `Path` reads it, inside it: a doubled
/// slash, a `/./` (at its start or end: see [`plain_split`]).
static ODD_INSIDE: std::sync::LazyLock<[memchr::memmem::Finder<'static>; 2]> =
    std::sync::LazyLock::new(|| {
        [
            memchr::memmem::Finder::new(b"//"),
            memchr::memmem::Finder::new(b"/./"),
        ]
    });

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::fs::Meta;

    /// Bytes in memory, read 7 at a time (short reads, as `pread` may return).
    struct Bytes(Vec<u8>);

    impl Handle for Bytes {
        fn meta(&self) -> io::Result<Meta> {
            Err(io::Error::other("not used"))
        }
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            let from = (offset as usize).min(self.0.len());
            let n = buf.len().min(7).min(self.0.len() - from);
            buf[..n].copy_from_slice(&self.0[from..from + n]);
            Ok(n)
        }
    }

    /// `begins_with` (a stack buffer, short reads) answers as comparing the bytes read
    /// whole does: heads of every length up to past `HEAD_LEN`, files shorter, equal and
    /// longer, differing in the first, a middle or the last byte.
    #[test]
    fn begins_with_answers_as_a_whole_read_compared() {
        let mut rng = crate::test_rng::Rng(25);
        let mut below = |n: usize| rng.below(n as u64) as usize;
        for case in 0..2000 {
            let len = below(HEAD_LEN as usize + 40);
            let file: Vec<u8> = (0..len).map(|_| b'a' + below(3) as u8).collect();
            let head_len = below(HEAD_LEN as usize + 20);
            let mut head: Vec<u8> = file.iter().copied().take(head_len).collect();
            while head.len() < head_len {
                head.push(b'a');
            }
            if !head.is_empty() && below(2) == 0 {
                let at = [0, head.len() / 2, head.len() - 1][below(3)];
                head[at] = b'z';
            }
            let h = Bytes(file);
            let expected = read_range(&h, 0, head.len() as u64).unwrap() == head;
            assert_eq!(begins_with(&h, &head).unwrap(), expected, "case {case}");
        }
    }

    /// The rotation base as it was first written, on the name's characters.
    fn rotation_base_by_chars(path: &Path) -> String {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name.split('.').next().unwrap_or("");
        let trimmed = stem.trim_end_matches(|c: char| c.is_ascii_digit());
        match trimmed.strip_suffix(['-', '_']) {
            Some(base) if trimmed.len() < stem.len() && !base.is_empty() => base.to_owned(),
            _ => stem.to_owned(),
        }
    }

    /// The split on the last slash and the rotation base of the name's bytes answer as `Path`
    /// and the name's characters do, on plain and odd paths alike.
    #[test]
    fn related_answers_as_the_paths_components_do() {
        let by_components = |a: &Path, b: &Path| {
            if a.file_name() == b.file_name() && a.parent() != b.parent() {
                return false;
            }
            rotation_base_by_chars(a) == rotation_base_by_chars(b)
        };
        let paths = [
            "/var/log/pods/ns_a_1/app/0.log",
            "/var/log/pods/ns_a_1/app/0.log.20261207-101010",
            "/var/log/pods/ns_a_1/app/0.log.20261207-101010.gz",
            "/var/log/pods/ns_b_2/app/0.log",
            "/var/log/pods/ns_a_1/app/1.log",
            "/var/log/pods//ns_a_1/app/0.log",
            "/var/log/pods/./ns_a_1/app/0.log",
            "./logs/app.log",
            "logs/app.log",
            "logs/app.log.1",
            "logs/old/app.log.1",
            "app.log",
            "app.log.1",
            "/app.log",
            "/logs/app.log/",
            "/logs/app.log/.",
            "/logs/..",
            "/logs/./app.log",
            "/srv/site-a/app.log",
            "/srv/site-b/app.log",
            "/srv/site-b/app.log-20261206",
            "/srv/site-b/app-20261206.log",
            "/srv/site-b/app_7.log.gz",
            "/srv/site-b/app_.log",
            "/srv/site-b/-1.log",
            "/srv/site-b/12.log",
            "/srv/.hidden/app.log",
            "/srv/x./app.log",
            "/srv/x/.",
            "/srv//x/app.log-1",
            "/srv/x/./app.log",
            "//srv/app.log",
            "/./srv/app.log",
            "srv/./x/app.log.1",
            "srv/.//x/app.log",
        ];
        for a in paths {
            assert_eq!(
                rotation_base(file_name_bytes(Path::new(a))),
                rotation_base_by_chars(Path::new(a)).as_bytes(),
                "{a}"
            );
            for b in paths {
                let (a, b) = (Path::new(a), Path::new(b));
                assert_eq!(related(a, b), by_components(a, b), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn starts_with_bytes_answers_as_the_digest_does() {
        let file = Bytes(b"2026-12-05T10:00:00Z stdout F first line\nsecond\n".to_vec());
        let size = file.0.len() as u64;
        for head in [
            &b""[..],
            b"2",
            b"2026-12-05T10:00:00Z stdout F first line\n",
            b"2026-12-05T10:00:00Z stdout F first line\nsecond\n",
            b"2026-12-05T10:00:00Z stdout F first line\nsecond\nmore",
            b"2026-12-05T10:00:00Z stderr F",
            b"x",
        ] {
            assert_eq!(
                starts_with_bytes(&file, size, head).unwrap(),
                starts_with(&file, size, &Digest::of(head)).unwrap(),
                "{head:?}"
            );
        }
        // A size smaller than the head (the file was truncated meanwhile): no.
        assert!(!starts_with_bytes(&file, 1, b"20").unwrap());
        assert!(starts_with_bytes(&file, size, b"2026-12").unwrap());
        assert!(!starts_with_bytes(&file, size, b"2026-11").unwrap());
    }

    #[test]
    fn rotation_bases() {
        for (a, b) in [
            ("/l/access.log", "access"),
            ("/l/access.log.1", "access"),
            ("/l/access.log.2.gz", "access"),
            ("/l/access.log-20261128", "access"),
            ("/l/access-20261128.log", "access"),
            ("/l/web-frontend.log", "web-frontend"),
            ("/l/app_3.log", "app"),
            ("/l/2026.log", "2026"),
        ] {
            assert_eq!(
                rotation_base(file_name_bytes(Path::new(a))),
                b.as_bytes(),
                "{a}"
            );
        }
        assert!(related(Path::new("/a/x.log"), Path::new("/b/x.log.1")));
        assert!(related(Path::new("/a/x.log"), Path::new("/a/x.log")));
        assert!(related(Path::new("/a/x.log.1"), Path::new("/a/x.log")));
        // Two pods' logs, two sites' logs.
        assert!(!related(
            Path::new("/var/log/pods/a_p_1/app/0.log"),
            Path::new("/var/log/pods/b_q_2/app/0.log")
        ));
        assert!(!related(
            Path::new("/srv/a/app.log"),
            Path::new("/srv/b/app.log")
        ));
        assert!(!related(
            Path::new("/a/web-frontend.log"),
            Path::new("/a/web-backend.log")
        ));
    }
}
