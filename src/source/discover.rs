//! Finding the files a file source reads, and being told when they change.
//!
//! Globs are expanded with the `glob` crate (the rust-lang one: `*`, `?`, `[..]`, `**`).
//! Notifications come from `notify` (inotify on Linux), on the directories the globs can match
//! in; they only wake the source, which then re-checks files itself, so a lost or unsupported
//! notification costs latency (one poll interval), never data.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::Sender;

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher as _};

/// Why a source thread wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// File contents changed: read.
    Data,
    /// Files or directories appeared, vanished or were renamed: expand the globs, then read.
    Rescan,
    /// Shut down.
    Stop,
}

/// A file path matched by a glob, with the identity that tells rotations apart.
#[derive(Debug)]
pub struct Found {
    /// The path as matched.
    pub path: PathBuf,
    /// Device and inode of the file the path names now.
    pub id: FileId,
}

/// Device and inode: what a file is, whatever it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    /// The identity of the file behind `meta`.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The compiled globs of one source.
pub struct Globs {
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
}

impl Globs {
    /// `include` and `exclude` are absolute patterns, already validated.
    pub fn new(include: Vec<String>, exclude: &[String]) -> Globs {
        Globs {
            include,
            exclude: exclude
                .iter()
                .filter_map(|p| glob::Pattern::new(p).ok())
                .collect(),
        }
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.include
    }

    /// Every regular file matched now, once each. Unreadable directories are skipped.
    pub fn expand(&self) -> Vec<Found> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for pattern in &self.include {
            let Ok(paths) = glob::glob(pattern) else {
                continue;
            };
            for path in paths.flatten() {
                if self.exclude.iter().any(|x| x.matches_path(&path)) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue; // vanished between the listing and the stat
                };
                if !meta.is_file() || !seen.insert(path.clone()) {
                    continue;
                }
                out.push(Found {
                    id: FileId::of(&meta),
                    path,
                });
            }
        }
        out
    }

    /// The directories to watch so that every change the globs could see wakes the source:
    /// the longest glob-free prefix of each pattern (recursively when the glob spans
    /// directories), or, while that prefix does not exist yet, its nearest existing ancestor.
    pub fn watch_dirs(&self) -> HashSet<(PathBuf, bool)> {
        let mut dirs = HashSet::new();
        for pattern in &self.include {
            let mut prefix = PathBuf::new();
            let mut glob_components = 0;
            for component in Path::new(pattern).components() {
                if glob_components > 0 || is_glob(component) {
                    glob_components += 1;
                } else {
                    prefix.push(component);
                }
            }
            let (mut dir, recursive) = match glob_components {
                // A plain file path: watch its directory.
                0 => (
                    prefix.parent().map(Path::to_path_buf).unwrap_or_default(),
                    false,
                ),
                1 => (prefix, false),
                _ => (prefix, true),
            };
            if dir.is_dir() {
                dirs.insert((dir, recursive));
                continue;
            }
            // The prefix does not exist yet: watch its nearest existing ancestor, flat. Its
            // creation triggers a rescan, which then watches one level deeper.
            while dir.pop() {
                if dir.is_dir() {
                    dirs.insert((dir, false));
                    break;
                }
            }
        }
        dirs
    }
}

fn is_glob(component: Component) -> bool {
    matches!(component, Component::Normal(s) if s.to_string_lossy().contains(['*', '?', '[']))
}

/// Inotify watches on directories, kept in step with [`Globs::watch_dirs`].
pub struct Watcher {
    inner: Option<notify::RecommendedWatcher>,
    watched: HashSet<(PathBuf, bool)>,
}

impl Watcher {
    /// A watcher that sends to `wake`; when notifications are unavailable (or `enabled` is
    /// false) it watches nothing and the source relies on polling.
    pub fn new(wake: Sender<Wake>, enabled: bool) -> (Watcher, Option<String>) {
        let polling = |problem| {
            let w = Watcher {
                inner: None,
                watched: HashSet::new(),
            };
            (w, problem)
        };
        if !enabled {
            return polling(None);
        }
        let handler = move |event: notify::Result<notify::Event>| {
            let wake_kind = match event {
                Ok(e) => match e.kind {
                    EventKind::Access(_) => return,
                    EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => {
                        Wake::Data
                    }
                    EventKind::Modify(ModifyKind::Metadata(_)) => return,
                    _ => Wake::Rescan,
                },
                Err(_) => Wake::Rescan,
            };
            let _ = wake.send(wake_kind);
        };
        match notify::recommended_watcher(handler) {
            Ok(w) => (
                Watcher {
                    inner: Some(w),
                    watched: HashSet::new(),
                },
                None,
            ),
            Err(e) => polling(Some(format!(
                "file notifications unavailable, polling only: {e}"
            ))),
        }
    }

    /// Whether notifications are on.
    pub fn is_active(&self) -> bool {
        self.inner.is_some()
    }

    /// Watches exactly `dirs`; returns the errors of directories that could not be watched.
    pub fn update(&mut self, dirs: HashSet<(PathBuf, bool)>) -> Vec<String> {
        let Some(inner) = self.inner.as_mut() else {
            return Vec::new();
        };
        let mut errors = Vec::new();
        for (dir, _) in self.watched.difference(&dirs) {
            let _ = inner.unwatch(dir);
        }
        let mut now = HashSet::new();
        for (dir, recursive) in dirs {
            if self.watched.contains(&(dir.clone(), recursive)) {
                now.insert((dir, recursive));
                continue;
            }
            let mode = if recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            match inner.watch(&dir, mode) {
                Ok(()) => {
                    now.insert((dir, recursive));
                }
                Err(e) => errors.push(format!("cannot watch {}: {e}", dir.display())),
            }
        }
        self.watched = now;
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_the_glob_free_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_str().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        let globs = Globs::new(
            vec![
                format!("{base}/a/*.log"),
                format!("{base}/a/**/x.log"),
                format!("{base}/a/missing/deeper/*.log"),
                format!("{base}/a/b/*/deep.log"),
                format!("{base}/a/b/plain.log"),
            ],
            &[],
        );
        let dirs = globs.watch_dirs();
        let a = tmp.path().join("a");
        assert!(dirs.contains(&(a.clone(), false)), "{dirs:?}");
        assert!(dirs.contains(&(a.clone(), true)), "{dirs:?}");
        assert!(dirs.contains(&(a.join("b"), false)), "{dirs:?}");
        assert!(dirs.contains(&(a.join("b"), true)), "{dirs:?}");
        assert_eq!(dirs.len(), 4, "{dirs:?}");
    }
}
