//! What the file tailer asks of a filesystem, as a trait: the real one here, a simulated one in
//! the tailer's model tests (`tailer::sim`), so every decision about file identity runs against
//! renames, copies, truncations, listing errors and crashes in thousands of seeded schedules.
//!
//! The real filesystem opens files non-blocking (a FIFO or a device can never hang the tailer),
//! reads with `pread` (no shared file position), refuses special filesystems (`/proc`, `/sys`:
//! their files report size 0 and change under every read) and counts the descriptors it holds
//! against a budget derived from `RLIMIT_NOFILE`, which it raises to the hard limit first.

use foldhash::{HashMap, HashSet};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Device, inode and birth time: what a file is, whatever it is called. The birth time (statx
/// `btime`, in nanoseconds; 0 where the filesystem does not keep it) tells a file from a later
/// one that reuses its inode number after it was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub birth: u64,
}

/// What `stat` says of a file, as far as the tailer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub id: FileId,
    pub size: u64,
    /// Names the file has (0: deleted, alive only through open descriptors).
    pub links: u64,
    /// ctime in nanoseconds: moves with every write and truncation (and cannot be set back by
    /// `touch` or `cp -p`, unlike mtime).
    pub changed: u64,
    /// A regular file (only those are read).
    pub is_file: bool,
    /// On a special filesystem (procfs, sysfs, …): not read.
    pub special: bool,
}

/// An open file.
pub trait Handle {
    /// `fstat`.
    fn meta(&self) -> io::Result<Meta>;
    /// `pread`: up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// A directory (after following a symlink).
    pub is_dir: bool,
    /// The entry itself is a symbolic link.
    pub is_symlink: bool,
}

/// A directory's entries as listed: shared, so a listing kept from an earlier look is given
/// again without copying every name (a node's 750 directories at every poll).
pub type Entries = Arc<[Entry]>;

/// A path as the key of a hash set or map: its bytes when they are what its components would
/// write (no `//`, no `.` component but a leading one, no `/` at the end), else its components
/// written out. Paths `Path` calls equal have equal keys. A key hashes as bytes; `Path`'s own
/// hash walks the path byte by byte for its components, which with the default hasher was a
/// third of the instructions of an idle poll of a node's 500 files (BENCHMARKS.md, fifteenth
/// round).
pub fn path_key(path: &Path) -> Cow<'_, [u8]> {
    let bytes = path.as_os_str().as_bytes();
    if written_as_components(bytes) {
        Cow::Borrowed(bytes)
    } else {
        Cow::Owned(
            path.components()
                .collect::<PathBuf>()
                .into_os_string()
                .into_vec(),
        )
    }
}

/// [`path_key`] of an owned path, without a copy when its bytes are the key.
pub fn path_key_owned(path: PathBuf) -> Vec<u8> {
    if written_as_components(path.as_os_str().as_bytes()) {
        path.into_os_string().into_vec()
    } else {
        path_key(&path).into_owned()
    }
}

/// The [`path_key`] of `path`'s parent, the directory `Path::parent` names (none for the root
/// or an empty path); found by its last `/` when the path is written as its components.
pub fn parent_key(path: &Path) -> Option<Cow<'_, [u8]>> {
    let bytes = path.as_os_str().as_bytes();
    if !written_as_components(bytes) {
        return path.parent().map(path_key);
    }
    if bytes.is_empty() || bytes == b"/" {
        return None;
    }
    Some(Cow::Borrowed(match memchr::memrchr(b'/', bytes) {
        None => &bytes[..0],
        Some(0) => &bytes[..1],
        Some(i) => &bytes[..i],
    }))
}

/// Whether `bytes` are the path its components write: no `//`, no `/.` followed by `/` or
/// the end, no `/` at the end (but the root's own).
fn written_as_components(bytes: &[u8]) -> bool {
    if bytes.len() > 1 && bytes.ends_with(b"/") {
        return false;
    }
    // What follows a slash at `i` is a name (not a second slash, not a `.` component).
    let fine_after = |i: usize| match bytes.get(i + 1) {
        Some(b'/') => false,
        Some(b'.') => !matches!(bytes.get(i + 2), None | Some(b'/')),
        _ => true,
    };
    // Eight bytes at a time: paths are short with a slash every few bytes, where `memchr`
    // would set up its vectors again at each one. A byte of the word is a slash where it is
    // zero after the xor; the borrow can mark bytes above a true one too, so each mark is
    // checked against the byte itself.
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes")) ^ (ONES * 0x2F);
        let mut marks = word.wrapping_sub(ONES) & !word & HIGH;
        while marks != 0 {
            let i = at + (marks.trailing_zeros() / 8) as usize;
            if bytes[i] == b'/' && !fine_after(i) {
                return false;
            }
            marks &= marks - 1;
        }
        at += 8;
    }
    let rest = chunks.remainder();
    (0..rest.len()).all(|j| rest[j] != b'/' || fine_after(at + j))
}

/// The filesystem operations the tailer uses.
pub trait Fs {
    type File: Handle;
    /// `stat` (following symlinks).
    fn stat(&self, path: &Path) -> io::Result<Meta>;
    /// Whether `path` itself is a symbolic link.
    fn is_symlink(&self, path: &Path) -> bool;
    /// Lists a directory afresh. Not a look a later [`Fs::list_kept`] builds on: the files of
    /// a directory listed this way (to find a checkpoint's file, or rotations out of the
    /// globs) were not looked at as a scan looks at them.
    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>>;
    /// Lists a directory, and says whether the listing is one kept from an earlier look at a
    /// directory that provably did not change since: no name in it was added, removed or
    /// renamed, so each name still names the file it named then (none is a symbolic link).
    /// A scan may then take the files under it as the last scan left them.
    fn list_kept(&self, dir: &Path) -> io::Result<(Entries, bool)> {
        self.list(dir).map(|entries| (entries.into(), false))
    }
    /// Forgets what is kept of `dir`'s listing: the next look lists it afresh and looks at
    /// every file in it (something there could not be looked at, or was not taken).
    fn forget_listing(&self, _dir: &Path) {}
    /// Opens a file for reading.
    fn open(&self, path: &Path) -> io::Result<Self::File>;
    /// The birth time ([`FileId::birth`]'s unit) a file created now would be given at the
    /// earliest: a file born later than this value was created after this call. `None` when
    /// not known (then no file is taken to be born after anything).
    fn birth_clock(&self) -> Option<u64> {
        None
    }
    /// Whether another descriptor may be held open (the budget); when not, a file is read in
    /// turns: opened, read and closed again.
    fn may_hold_open(&self) -> bool;
    /// Why `path`, which [`Fs::stat`] found not to be a regular file, is not read: one of the
    /// words of [`NOT_READ`].
    fn not_regular(&self, _path: &Path) -> &'static str {
        NOT_REGULAR
    }
}

/// A path that is not a regular file, when nothing more is known of it.
pub const NOT_REGULAR: &str = "not a regular file";
/// A regular file on a special filesystem.
pub const ON_SPECIAL_FS: &str =
    "on a special filesystem (/proc, /sys): read it with a status_file source";
const DIRECTORY: &str = "it is a directory, not a regular file";
const FIFO: &str = "it is a FIFO, not a regular file";
const SOCKET: &str = "it is a socket, not a regular file";
const CHAR_DEVICE: &str = "it is a character device, not a regular file";
const BLOCK_DEVICE: &str = "it is a block device, not a regular file";

/// Why a path a file source's globs match is not read: the bounded reason (the `reason` label
/// of `quarry_source_paths_not_read`) and the words said after "`<path>` is not read: ".
pub const NOT_READ: &[(&str, &str)] = &[
    ("directory", DIRECTORY),
    ("fifo", FIFO),
    ("socket", SOCKET),
    ("device", CHAR_DEVICE),
    ("device", BLOCK_DEVICE),
    ("special_filesystem", ON_SPECIAL_FS),
    ("other", NOT_REGULAR),
];

/// Paths not read by reason, for the reasons in `now` or `before` (a reason gone is counted
/// 0, one never seen is not exported): what `quarry_source_paths_not_read` says.
pub fn not_read_counts(
    now: &[(PathBuf, &'static str)],
    before: &[(PathBuf, &'static str)],
) -> Vec<(&'static str, usize)> {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for (_, why) in before.iter().chain(now) {
        let reason = not_read_reason(why);
        if !counts.iter().any(|(r, _)| *r == reason) {
            let n = now
                .iter()
                .filter(|(_, w)| not_read_reason(w) == reason)
                .count();
            counts.push((reason, n));
        }
    }
    counts
}

/// The bounded reason of words from [`NOT_READ`] (`other` for any others).
pub fn not_read_reason(why: &str) -> &'static str {
    NOT_READ
        .iter()
        .find(|(_, words)| *words == why)
        .map_or("other", |(reason, _)| reason)
}

/// The real filesystem.
///
/// Listings of directories are kept while a directory provably did not change (see
/// [`RealFs::reuse_listings`]): on a node, a rotation in one pod's directory then costs one
/// `statx` per other directory instead of listing hundreds of them.
#[derive(Debug, Default)]
pub struct RealFs {
    /// By [`path_key`].
    listings: RefCell<HashMap<Vec<u8>, (DirStamp, Entries)>>,
    mode: Cell<Listings>,
}

/// How [`Fs::list_kept`] treats the listings of [`RealFs`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Listings {
    /// Every directory is listed afresh and nothing is kept: one-shot, `check` and the glob
    /// preview, which scan once (no `statx` per directory for a stamp no scan would use).
    #[default]
    Fresh,
    /// Every directory is listed afresh (the poll of a watched source, every tenth poll of
    /// one without notifications: the safety net for what notifications and file times could
    /// miss, which also forgets the directories no longer reached), and those that provably
    /// did not change are kept for the scans that follow.
    Renew,
    /// Listings kept for directories that provably did not change are given again (a scan
    /// woken by a notification, the other polls of a source without notifications).
    Reuse,
    /// Listings kept are given again with no look at their directory: notifications of names
    /// say which directories changed, and their listings are forgotten first
    /// ([`RealFs::forget_changed`]; `watch: names`). A directory listed afresh is kept as with
    /// [`Listings::Reuse`] (only when settled), so one created a moment ago, perhaps before its
    /// watch was in place, is listed again at the next look.
    Notified,
}

/// What says a directory's entries are what they were: its identity and its times. Any entry
/// added, removed or renamed moves both mtime and ctime (and ctime cannot be set back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DirStamp {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

/// A directory whose last change is more recent than this is listed again at every look:
/// file times come from a coarse clock (a few milliseconds), so a change right after the
/// listing could leave the times as they were.
const LISTING_SETTLED: std::time::Duration = std::time::Duration::from_secs(1);

impl RealFs {
    /// A real filesystem, listing every directory afresh and keeping nothing until told
    /// otherwise.
    pub fn new() -> RealFs {
        RealFs::default()
    }

    /// How the listings that follow are taken (see [`Listings`]).
    pub fn listings(&self, mode: Listings) {
        if !matches!(mode, Listings::Reuse | Listings::Notified) {
            self.listings.borrow_mut().clear();
        }
        self.mode.set(mode);
    }

    /// Forgets the kept listings of `dirs` and of every directory under one of them (a
    /// directory removed or renamed takes its subdirectories' entries along).
    pub fn forget_changed(&self, dirs: &HashSet<PathBuf>) {
        if dirs.is_empty() {
            return;
        }
        // Keys both (a `/` at the end of a named directory is not one of its bytes then).
        let changed: Vec<Cow<[u8]>> = dirs.iter().map(|d| path_key(d)).collect();
        let under = |d: &[u8], c: &[u8]| {
            d.starts_with(c) && (d.len() == c.len() || d[c.len()] == b'/' || c.ends_with(b"/"))
        };
        self.listings
            .borrow_mut()
            .retain(|dir, _| !changed.iter().any(|c| under(dir, c)));
    }

    fn dir_stamp(dir: &Path) -> io::Result<DirStamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(dir)?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Ok(DirStamp {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }

    /// `openat` and `getdents64` until the end, through rustix: `std::fs::read_dir` goes
    /// through glibc's `opendir`, which adds an `fstat` of every directory listed (750 calls a
    /// poll on a node of 250 pods). An entry's kind comes from the listing (`d_type`), or
    /// from an `lstat` where the filesystem does not say.
    fn list_fresh(dir: &Path) -> io::Result<Vec<Entry>> {
        use rustix::fs::{Dir, FileType, Mode, OFlags};
        use std::os::unix::ffi::OsStrExt;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = rustix::fs::open(dir, flags, Mode::empty())?;
        let mut out = Vec::new();
        for entry in Dir::new(fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let path = || dir.join(std::ffi::OsStr::from_bytes(name));
            let kind = match entry.file_type() {
                FileType::Unknown => match std::fs::symlink_metadata(path()) {
                    Ok(m) => FileType::from_raw_mode(std::os::unix::fs::MetadataExt::mode(&m)),
                    Err(_) => continue,
                },
                kind => kind,
            };
            let is_symlink = kind == FileType::Symlink;
            let is_dir = if is_symlink {
                std::fs::metadata(path()).is_ok_and(|m| m.is_dir())
            } else {
                kind == FileType::Directory
            };
            out.push(Entry {
                name: String::from_utf8_lossy(name).into_owned(),
                is_dir,
                is_symlink,
            });
        }
        Ok(out)
    }
}

/// Whether `dir` is its own canonical path (no symbolic link on the way to it).
fn is_canonical(dir: &Path) -> bool {
    std::fs::canonicalize(dir).is_ok_and(|c| c == dir)
}

/// An open real file; counts against the descriptor budget while it lives.
#[derive(Debug)]
pub struct RealFile {
    file: std::fs::File,
}

/// Descriptors tailers hold open now, across every source.
static HELD: AtomicUsize = AtomicUsize::new(0);
/// How many they may hold (set by [`raise_open_file_limit`]).
static BUDGET: AtomicUsize = AtomicUsize::new(768);

/// Raises the soft open-file limit to the hard limit (Go programs get this from their runtime;
/// Rust programs must ask) and sets the tailers' descriptor budget to three quarters of it,
/// keeping the rest for sockets, commands and the unexpected. Returns (soft limit now, budget).
pub fn raise_open_file_limit() -> (u64, usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    let soft = limit.rlim_cur;
    let budget = (soft.min(1 << 20) as usize * 3 / 4).max(16);
    BUDGET.store(budget, Ordering::Relaxed);
    (soft, budget)
}

impl Drop for RealFile {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Magic numbers (`statfs.f_type`) of filesystems whose files are not logs.
const SPECIAL_FILESYSTEMS: &[i64] = &[
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x6462_6720, // debugfs
    0x7472_6163, // tracefs
    0x1cd1,      // devpts
    0x6367_7270, // cgroup2
    0x0027_e0eb, // cgroup
    0xcafe_4a11, // bpf
    0x7363_6673, // securityfs
];

/// Whether the filesystem of device `dev` (where `path` is) is a special one; asked of the
/// kernel once per device (a scan stats every file every second).
fn on_special_fs(dev: u64, path: &Path) -> bool {
    static KNOWN: std::sync::Mutex<Vec<(u64, bool)>> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(&(_, special)) = known.iter().find(|(d, _)| *d == dev) {
        return special;
    }
    let special = statfs_special(path);
    if known.len() < 4096 {
        known.push((dev, special));
    }
    special
}

fn statfs_special(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs with a NUL-terminated path and a zeroed struct to fill.
    unsafe {
        let mut s: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut s) == 0 && SPECIAL_FILESYSTEMS.contains(&(s.f_type as i64))
    }
}

fn meta_of(m: &std::fs::Metadata, special: bool) -> Meta {
    use std::os::unix::fs::MetadataExt;
    Meta {
        id: FileId {
            dev: m.dev(),
            ino: m.ino(),
            birth: m
                .created()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
        },
        size: m.len(),
        links: m.nlink(),
        changed: (m.ctime() as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(m.ctime_nsec() as u64),
        is_file: m.is_file(),
        special,
    }
}

impl Handle for RealFile {
    fn meta(&self) -> io::Result<Meta> {
        self.file.metadata().map(|m| meta_of(&m, false))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

impl Fs for RealFs {
    type File = RealFile;

    fn birth_clock(&self) -> Option<u64> {
        // The kernel stamps births from its coarse clock, which lags this one by up to a tick:
        // a file created just after this call may look born a little before it (then it is
        // not taken to be born after it: the safe side).
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_nanos() as u64)
    }

    fn stat(&self, path: &Path) -> io::Result<Meta> {
        let m = std::fs::metadata(path)?;
        Ok(meta_of(
            &m,
            m.is_file() && on_special_fs(std::os::unix::fs::MetadataExt::dev(&m), path),
        ))
    }

    fn is_symlink(&self, path: &Path) -> bool {
        std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<Entry>> {
        RealFs::list_fresh(dir)
    }

    fn list_kept(&self, dir: &Path) -> io::Result<(Entries, bool)> {
        if self.mode.get() == Listings::Fresh {
            return RealFs::list_fresh(dir).map(|entries| (entries.into(), false));
        }
        let key = path_key(dir);
        if self.mode.get() == Listings::Notified {
            if let Some((_, entries)) = self.listings.borrow().get(key.as_ref()) {
                return Ok((entries.clone(), true));
            }
        }
        // The stamp is taken before the listing: a change during it moves the stamp, so the
        // listing is not trusted next time.
        let stamp = RealFs::dir_stamp(dir);
        if self.mode.get() == Listings::Reuse {
            if let (Ok(stamp), Some((kept, entries))) =
                (&stamp, self.listings.borrow().get(key.as_ref()))
            {
                if kept == stamp {
                    return Ok((entries.clone(), true));
                }
            }
        }
        let entries: Entries = match RealFs::list_fresh(dir) {
            Ok(e) => e.into(),
            Err(e) => {
                self.listings.borrow_mut().remove(key.as_ref());
                return Err(e);
            }
        };
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let settled = |s: &DirStamp| {
            let last_change = s.mtime_ns.max(s.ctime_ns);
            now_ns - last_change > LISTING_SETTLED.as_nanos() as i128
        };
        // A symlink's target may turn from a directory into a file with no change here: a
        // listing with one is never kept. Nor, with notifications of names, the listing of a
        // directory reached through a symbolic link: its watch is on the link's side, its
        // changes are the target's and come with no notification.
        let trusted = || self.mode.get() != Listings::Notified || is_canonical(dir);
        match stamp {
            Ok(stamp) if settled(&stamp) && !entries.iter().any(|e| e.is_symlink) && trusted() => {
                self.listings
                    .borrow_mut()
                    .insert(key.into_owned(), (stamp, entries.clone()));
            }
            _ => {
                self.listings.borrow_mut().remove(key.as_ref());
            }
        }
        Ok((entries, false))
    }

    fn forget_listing(&self, dir: &Path) {
        self.listings.borrow_mut().remove(path_key(dir).as_ref());
    }

    fn open(&self, path: &Path) -> io::Result<RealFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(path)?;
        HELD.fetch_add(1, Ordering::Relaxed);
        Ok(RealFile { file })
    }

    fn may_hold_open(&self) -> bool {
        HELD.load(Ordering::Relaxed) < BUDGET.load(Ordering::Relaxed)
    }

    fn not_regular(&self, path: &Path) -> &'static str {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::metadata(path).map(|m| m.file_type()) {
            Ok(kind) if kind.is_dir() => DIRECTORY,
            Ok(kind) if kind.is_fifo() => FIFO,
            Ok(kind) if kind.is_socket() => SOCKET,
            Ok(kind) if kind.is_char_device() => CHAR_DEVICE,
            Ok(kind) if kind.is_block_device() => BLOCK_DEVICE,
            _ => NOT_REGULAR,
        }
    }
}

/// A bounded reason for a listing or open error, for self-metric labels.
pub fn error_reason(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => "permission_denied",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "too_many_open_files",
        Some(libc::ENOTDIR) => "not_a_directory",
        Some(libc::ELOOP) => "symlink_loop",
        Some(libc::EIO) => "io_error",
        _ => "other",
    }
}

/// The path's parent directory, or the path itself for `/`.
pub fn parent(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Differential: on paths made of `/`, `//`, `.`, `..` and names in every order, two keys
    /// are equal exactly when `Path` calls the paths equal, and the parent's key is the key of
    /// what `Path::parent` names.
    #[test]
    fn path_keys_are_equal_exactly_when_the_paths_are() {
        let pieces = ["a", "b", "..", ".", ".a", "a.", "/", "//", "/./", "./"];
        let mut rng = crate::test_rng::Rng(0x0005_eed0_f9a7);
        let mut paths: Vec<String> = ["", "/", ".", "./", "a", "/a", "a/", "/a/.", "a/./b", "//a"]
            .map(String::from)
            .to_vec();
        for _ in 0..400 {
            let n = 1 + rng.below(12);
            let mut p = String::new();
            for _ in 0..n {
                p.push_str(rng.pick(&pieces[..]));
            }
            paths.push(p);
        }
        for p in &paths {
            let path = Path::new(p);
            assert_eq!(
                parent_key(path).map(Cow::into_owned),
                path.parent().map(|d| path_key(d).into_owned()),
                "{p:?}"
            );
            assert_eq!(
                path_key_owned(path.to_path_buf()),
                path_key(path).into_owned()
            );
            for q in &paths {
                assert_eq!(
                    path_key(path) == path_key(Path::new(q)),
                    path == Path::new(q),
                    "{p:?} and {q:?}"
                );
            }
        }
        // A plain path is its own key, borrowed.
        assert!(matches!(
            path_key(Path::new("/var/log/pods/a_b_c/app")),
            Cow::Borrowed(_)
        ));
        assert_eq!(&*path_key(Path::new("/var//log/./pods/")), b"/var/log/pods");
    }

    /// The names of a scan's listing of `dir` (kept or not).
    fn names(fs: &RealFs, dir: &Path) -> Vec<String> {
        let (entries, _) = fs.list_kept(dir).unwrap();
        let mut n: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        n.sort();
        n
    }

    /// A kept listing is given again only while its directory provably did not change: every
    /// name added, renamed or removed is seen at the next look, kept or not.
    #[test]
    fn a_kept_listing_never_hides_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.log"), "x").unwrap();
        let fs = RealFs::new();
        fs.listings(Listings::Reuse);
        assert_eq!(names(&fs, d), ["a.log"]);
        // Changed a moment ago: not kept (file times are coarse), so a change right after is
        // seen.
        assert!(!fs.listings.borrow().contains_key(path_key(d).as_ref()));
        std::fs::write(d.join("b.log"), "x").unwrap();
        assert_eq!(names(&fs, d), ["a.log", "b.log"]);
        std::thread::sleep(LISTING_SETTLED + std::time::Duration::from_millis(200));
        assert_eq!(names(&fs, d), ["a.log", "b.log"]);
        assert!(
            fs.listings.borrow().contains_key(path_key(d).as_ref()),
            "settled: kept"
        );
        assert_eq!(names(&fs, d), ["a.log", "b.log"]);
        // Each kind of change, right after a look that gave the kept listing.
        std::fs::write(d.join("c.log"), "x").unwrap();
        assert_eq!(names(&fs, d), ["a.log", "b.log", "c.log"]);
        std::thread::sleep(LISTING_SETTLED + std::time::Duration::from_millis(200));
        assert_eq!(names(&fs, d), ["a.log", "b.log", "c.log"]);
        std::fs::rename(d.join("c.log"), d.join("d.log")).unwrap();
        assert_eq!(names(&fs, d), ["a.log", "b.log", "d.log"]);
        std::thread::sleep(LISTING_SETTLED + std::time::Duration::from_millis(200));
        assert_eq!(names(&fs, d), ["a.log", "b.log", "d.log"]);
        std::fs::remove_file(d.join("a.log")).unwrap();
        assert_eq!(names(&fs, d), ["b.log", "d.log"]);
        // A directory replaced by another of the same name is another inode.
        std::thread::sleep(LISTING_SETTLED + std::time::Duration::from_millis(200));
        assert_eq!(names(&fs, d), ["b.log", "d.log"]);
        let sub = d.join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("x.log"), "x").unwrap();
        std::thread::sleep(LISTING_SETTLED + std::time::Duration::from_millis(200));
        assert_eq!(names(&fs, &sub), ["x.log"]);
        assert!(fs.listings.borrow().contains_key(path_key(&sub).as_ref()));
        std::fs::rename(&sub, d.join("old")).unwrap();
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(names(&fs, &sub), Vec::<String>::new());
        // A listing with a symbolic link is never kept (its target may change kind).
        std::os::unix::fs::symlink(d.join("b.log"), sub.join("link.log")).unwrap();
        std::thread::sleep(LISTING_SETTLED + std::time::Duration::from_millis(200));
        assert_eq!(names(&fs, &sub), ["link.log"]);
        assert!(!fs.listings.borrow().contains_key(path_key(&sub).as_ref()));
        // The poll lists afresh and forgets what was kept, then keeps what is settled.
        fs.listings(Listings::Renew);
        assert!(fs.listings.borrow().is_empty());
        let all = ["b.log", "d.log", "old", "sub"];
        assert_eq!(names(&fs, d), all);
        assert!(fs.listings.borrow().contains_key(path_key(d).as_ref()));
        // With no notifications, nothing is kept (nor stamped).
        fs.listings(Listings::Fresh);
        assert!(fs.listings.borrow().is_empty());
        assert_eq!(names(&fs, d), all);
        assert!(fs.listings.borrow().is_empty());
        std::fs::write(d.join("e.log"), "x").unwrap();
        assert_eq!(names(&fs, d), ["b.log", "d.log", "e.log", "old", "sub"]);
    }

    /// With notifications of names, a directory reached through a symbolic link is listed at
    /// every look: its changes are its target's, and no notification tells of them.
    #[test]
    fn a_directory_through_a_symlink_is_not_kept_on_notifications() {
        let dir = tempfile::tempdir().unwrap();
        let d = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(d.join("real")).unwrap();
        std::fs::write(d.join("real/a.log"), "x").unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("link")).unwrap();
        let fs = RealFs::new();
        fs.listings(Listings::Notified);
        std::thread::sleep(LISTING_SETTLED + std::time::Duration::from_millis(200));
        assert_eq!(names(&fs, &d.join("real")), ["a.log"]);
        assert_eq!(names(&fs, &d.join("link")), ["a.log"]);
        assert!(fs
            .listings
            .borrow()
            .contains_key(path_key(&d.join("real")).as_ref()));
        assert!(!fs
            .listings
            .borrow()
            .contains_key(path_key(&d.join("link")).as_ref()));
        // Stamps say as much without notifications: kept through the link too.
        fs.listings(Listings::Reuse);
        assert_eq!(names(&fs, &d.join("link")), ["a.log"]);
        assert!(fs
            .listings
            .borrow()
            .contains_key(path_key(&d.join("link")).as_ref()));
    }

    /// A path that is not a regular file says what it is; its reason is bounded.
    #[test]
    fn what_a_path_that_is_not_read_is() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("app.pipe");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let fs = RealFs::new();
        assert!(!fs.stat(&fifo).unwrap().is_file);
        assert_eq!(fs.not_regular(&fifo), "it is a FIFO, not a regular file");
        assert_eq!(not_read_reason(fs.not_regular(&fifo)), "fifo");
        let null = Path::new("/dev/null");
        assert_eq!(not_read_reason(fs.not_regular(null)), "device");
        assert_eq!(not_read_reason(fs.not_regular(dir.path())), "directory");
        assert_eq!(fs.not_regular(&dir.path().join("gone")), NOT_REGULAR);
        assert_eq!(not_read_reason("anything else"), "other");
        // A reason gone is counted 0; one never seen is not there.
        let before = vec![(fifo.clone(), FIFO), (dir.path().to_path_buf(), DIRECTORY)];
        let now = vec![(dir.path().to_path_buf(), DIRECTORY)];
        assert_eq!(
            not_read_counts(&now, &before),
            vec![("fifo", 0), ("directory", 1)]
        );
    }
}
