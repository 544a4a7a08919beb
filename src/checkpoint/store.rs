//! The storage directory (`--storage.path`): its lock, and the checkpoint file read and
//! written safely.
//!
//! Only regular files are opened, never through a symlink, and never in a way that can wait:
//! a FIFO or a device put where the lock, the checkpoint or its temporary file belongs is
//! refused with a message instead of hanging the start (a FIFO's open waits for a writer) or
//! filling memory (`/dev/zero` reads without end). What is read is bounded by the file's size
//! as `fstat` gives it, and by [`MAX_CHECKPOINT_BYTES`]. A write goes to a fresh temporary file
//! (created exclusively, so nothing put at its path is written into), is `fsync`ed, renamed
//! over the checkpoint, and the directory `fsync`ed: a reader sees the old checkpoint or the
//! new one, never a mix, even after a power loss.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::codec::decode;
use super::Snapshot;

/// The file a storage directory holds.
pub const FILE_NAME: &str = "quarry.checkpoint";
/// The largest checkpoint read back (a bigger file is not one this exporter wrote).
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;

/// What was found in the storage directory at start.
#[derive(Debug)]
pub enum Loaded {
    /// No checkpoint yet (a first start).
    Nothing,
    /// A checkpoint to resume from.
    Snapshot(Snapshot),
    /// A checkpoint that could not be read: moved aside to the path given; the exporter starts
    /// without it.
    Unreadable(String, PathBuf),
}

/// A storage directory, locked for this process.
pub struct Store {
    dir: PathBuf,
    _lock: File,
}

/// What a path holds when it is not a regular file, in words.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_symlink() {
        "a symlink"
    } else {
        "not a regular file"
    }
}

/// Opens `path` for reading if it is a regular file, without following a symlink and without
/// waiting (a FIFO's open would wait for a writer). `Ok(None)`: there is nothing at `path`.
fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<Option<File>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => {
            return Err(io::Error::other(format!(
                "it is {}, not a regular file",
                kind_of(m.file_type())
            )))
        }
        _ => {}
    }
    let file = match options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a symlink.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::other(
                "it is a symlink (the exporter writes this file itself; it is never a link)",
            ))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other(format!(
            "it is {}, not a regular file",
            kind_of(meta.file_type())
        )));
    }
    // Reads block again from here (a regular file never waits anyway).
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let fd = std::os::unix::io::AsRawFd::as_raw_fd(&file);
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    Ok(Some(file))
}

/// Seconds since the Unix epoch (0 before it): the stamp of what is moved aside.
fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating it if needed) and locks `dir`; an error says what to do.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        use std::os::unix::io::AsRawFd;
        // Something else at that path (a file, a FIFO, a link to a device) is named as such:
        // "cannot create it: File exists" would not say what to do.
        if let Ok(m) = std::fs::metadata(dir) {
            if !m.is_dir() {
                anyhow::bail!(
                    "--storage.path {}: it is {}, not a directory; give a directory (it is created if missing)",
                    dir.display(),
                    if m.is_file() {
                        "a regular file"
                    } else {
                        kind_of(m.file_type())
                    }
                );
            }
        }
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("--storage.path {}: cannot create it: {e}", dir.display())
        })?;
        let lock_path = dir.join(".lock");
        let lock = match open_regular(
            &lock_path,
            OpenOptions::new().create(true).truncate(false).write(true),
        ) {
            Ok(Some(f)) => f,
            Ok(None) => anyhow::bail!("--storage.path {}: cannot create its lock file", dir.display()),
            Err(e) if e.kind() == io::ErrorKind::Other => anyhow::bail!(
                "--storage.path {}: its lock file {} cannot be used: {e}; remove it (the exporter makes a new one)",
                dir.display(),
                lock_path.display()
            ),
            Err(e) => anyhow::bail!(
                "--storage.path {}: cannot write there ({e}); mount a writable volume",
                dir.display()
            ),
        };
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            anyhow::bail!(
                "--storage.path {}: another quarry_exporter uses it (each instance needs its own directory)",
                dir.display()
            );
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The checkpoint file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join(format!("{FILE_NAME}.tmp"))
    }

    /// Reads the checkpoint; one that cannot be read is moved aside (kept for inspection).
    pub fn load(&self) -> Loaded {
        let path = self.path();
        let file = match open_regular(&path, OpenOptions::new().read(true)) {
            Ok(Some(f)) => f,
            Ok(None) => return Loaded::Nothing,
            Err(e) => return self.aside("unreadable", format!("cannot read it: {e}")),
        };
        let size = match file.metadata() {
            Ok(m) => m.len(),
            Err(e) => return self.aside("unreadable", format!("cannot read it: {e}")),
        };
        if size > MAX_CHECKPOINT_BYTES {
            return self.aside(
                "unreadable",
                format!("it is {size} bytes, more than any checkpoint ({MAX_CHECKPOINT_BYTES})"),
            );
        }
        // Never more than the size said (the file may grow meanwhile: not ours then).
        let mut data = Vec::with_capacity(size as usize);
        if let Err(e) = file.take(size + 1).read_to_end(&mut data) {
            return self.aside("unreadable", format!("cannot read it: {e}"));
        }
        if data.len() as u64 > size {
            return self.aside("unreadable", "it grew while it was read".into());
        }
        match decode(&data) {
            Ok(s) => Loaded::Snapshot(s),
            Err(e) => self.aside("unreadable", e.0),
        }
    }

    /// Moves the checkpoint aside as `<file>.<what>-<unix time>` (a FIFO or a symlink is moved
    /// as it is, never opened); returns where it went.
    pub fn move_aside(&self, what: &str) -> PathBuf {
        let moved = self.dir.join(format!("{FILE_NAME}.{what}-{}", unix_secs()));
        let _ = std::fs::rename(self.path(), &moved);
        moved
    }

    /// An unreadable checkpoint, moved aside.
    fn aside(&self, what: &str, why: String) -> Loaded {
        Loaded::Unreadable(why, self.move_aside(what))
    }

    /// Writes `bytes` as the checkpoint, atomically and durably.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        crate::faults::hang_checkpoint_write();
        // The directory is named by its path: deleted and made again (or another volume
        // mounted there), it may be another exporter's by now, under a lock of its own. Ours
        // must still be the lock file at its path, or nothing is written there.
        {
            use std::os::unix::fs::MetadataExt;
            let held = self._lock.metadata()?;
            let replaced = match std::fs::symlink_metadata(self.dir.join(".lock")) {
                Ok(m) => (m.dev(), m.ino()) != (held.dev(), held.ino()),
                Err(_) => true,
            };
            if replaced {
                return Err(io::Error::other(format!(
                    "{} was deleted or replaced since the exporter started (its lock file is not \
                     this exporter's): nothing is written there; restart the exporter to use \
                     the directory now at that path",
                    self.dir.display()
                )));
            }
        }
        let tmp = self.tmp_path();
        // Whatever is at the temporary path (a file left by a crash, or a FIFO or a link put
        // there) is removed, and the file created anew: nothing else is ever written into.
        // A directory there cannot be removed as a file: it is moved aside (as an unreadable
        // checkpoint is), never deleted with what it holds, and never a reason to stop saving.
        if std::fs::symlink_metadata(&tmp).is_ok_and(|m| m.is_dir()) {
            let aside = self
                .dir
                .join(format!("{FILE_NAME}.tmp.unreadable-{}", unix_secs()));
            std::fs::rename(&tmp, &aside).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "{} is a directory and cannot be moved aside ({e}); remove it",
                        tmp.display()
                    ),
                )
            })?;
        }
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let written = (|| {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            // A write cut short (a full disk, `ulimit -f`) leaves no partial file behind to
            // keep the volume full for the status board's history and the next attempt.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, self.path())?;
        File::open(&self.dir)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::encode;
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            taken_at_ms: 1,
            families: Vec::new(),
            sources: vec![("web".into(), Default::default())],
        }
    }

    #[test]
    fn a_storage_directory_is_used_by_one_exporter_and_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(Store::open(dir.path())
            .err()
            .unwrap()
            .to_string()
            .contains("another quarry_exporter uses it"));
        assert!(matches!(store.load(), Loaded::Nothing));
        store.write(&encode(&snapshot())).unwrap();
        assert!(matches!(store.load(), Loaded::Snapshot(s) if s.sources == snapshot().sources));
        std::fs::write(store.path(), b"garbage").unwrap();
        match store.load() {
            Loaded::Unreadable(why, moved) => {
                assert!(why.contains("magic"), "{why}");
                assert!(moved.exists());
                assert!(!store.path().exists());
            }
            other => panic!("{other:?}"),
        }
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    /// A FIFO, a symlink to a device, and a directory where the checkpoint, its temporary file
    /// or the lock belong: refused at once with a message, never waited on or read without
    /// end.
    #[test]
    fn what_is_not_a_regular_file_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        mkfifo(&store.path());
        match store.load() {
            Loaded::Unreadable(why, moved) => {
                assert!(why.contains("a FIFO"), "{why}");
                assert!(moved.exists() && !store.path().exists());
            }
            other => panic!("{other:?}"),
        }
        std::os::unix::fs::symlink("/dev/zero", store.path()).unwrap();
        match store.load() {
            Loaded::Unreadable(why, _) => assert!(why.contains("symlink"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A FIFO at the temporary file's path: removed, the checkpoint written.
        mkfifo(&store.tmp_path());
        store.write(&encode(&snapshot())).unwrap();
        assert!(matches!(store.load(), Loaded::Snapshot(_)));
        drop(store);
        // The lock: a FIFO there is an error that says what to do.
        let other = tempfile::tempdir().unwrap();
        mkfifo(&other.path().join(".lock"));
        let e = Store::open(other.path()).err().unwrap().to_string();
        assert!(e.contains("a FIFO") && e.contains("remove it"), "{e}");
        let third = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/zero", third.path().join(".lock")).unwrap();
        let e = Store::open(third.path()).err().unwrap().to_string();
        assert!(e.contains("symlink"), "{e}");
    }
}
