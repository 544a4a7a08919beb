//! Finding the files a file source reads, and being told when they change.
//!
//! Globs (`*`, `?`, `[..]`, `**`) are expanded by a walk of their own, component by component
//! (the `glob` crate's patterns match the names), so that a directory that cannot be listed is
//! reported as such instead of looking empty, `**` never follows a symlinked directory into a
//! loop, and a shutdown can stop a walk over a huge tree. Notifications come from `notify`
//! (inotify on Linux), on the directories the globs can match in; they only wake the source,
//! which then re-checks files itself, so a lost or unsupported notification costs latency (one
//! poll interval), never data.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

pub use super::fs::FileId;
use super::fs::{Fs, Meta};

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

/// A regular file matched by a glob.
#[derive(Debug, Clone)]
pub struct Found {
    /// The path as matched.
    pub path: PathBuf,
    /// What the path names now (symlinks followed).
    pub meta: Meta,
    /// The path itself is a symbolic link.
    pub symlink: bool,
}

/// One expansion of a source's globs. A directory that could not be listed says nothing about
/// the files in it: they are not gone, only unseen (`failed`).
#[derive(Debug, Default)]
pub struct Listing {
    /// Regular files matched, each path once.
    pub found: Vec<Found>,
    /// Directories that could not be listed or searched, with the error.
    pub failed: Vec<(PathBuf, std::io::Error)>,
    /// Matched paths that are not read, and why: words of [`super::fs::NOT_READ`] (a
    /// directory, a FIFO, a device, a special filesystem).
    pub skipped: Vec<(PathBuf, &'static str)>,
    /// The expansion was stopped early (shutdown): it is incomplete.
    pub interrupted: bool,
}

impl Listing {
    /// Whether `path` lies under a directory that could not be listed this time.
    pub fn unseen(&self, path: &Path) -> bool {
        self.interrupted || self.failed.iter().any(|(dir, _)| path.starts_with(dir))
    }
}

/// One component of a pattern.
enum Part {
    Literal(String),
    Glob(glob::Pattern),
    /// `**`: zero or more directories.
    Any,
}

const MATCH: glob::MatchOptions = glob::MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// Most directories one expansion lists (a `**` over a huge tree stops there, with an error).
const MAX_DIRS_PER_EXPANSION: usize = 100_000;

/// The compiled globs of one source.
pub struct Globs {
    include: Vec<String>,
    parts: Vec<Vec<Part>>,
    exclude: Vec<glob::Pattern>,
}

impl Globs {
    /// `include` and `exclude` are absolute patterns, already validated.
    pub fn new(include: Vec<String>, exclude: &[String]) -> Globs {
        let parts = include
            .iter()
            .map(|pattern| {
                Path::new(pattern)
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(s) => {
                            let s = s.to_string_lossy().into_owned();
                            Some(if s == "**" {
                                Part::Any
                            } else if is_glob(c) {
                                glob::Pattern::new(&s)
                                    .map(Part::Glob)
                                    .unwrap_or(Part::Literal(s))
                            } else {
                                Part::Literal(s)
                            })
                        }
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        Globs {
            include,
            parts,
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

    /// Every regular file the patterns match now, each path once, with the directories that
    /// could not be listed. Symlinked directories are not descended by `**` (no loops); `stop`
    /// ends the walk early (the listing then says it was interrupted).
    pub fn expand<F: Fs>(&self, fs: &F, stop: &AtomicBool) -> Listing {
        let mut listing = Listing::default();
        let mut seen = HashSet::new();
        let mut dirs_listed = 0usize;
        for parts in &self.parts {
            // Directories reached so far, each with the index of the next part to match.
            let mut todo: Vec<(PathBuf, usize)> = vec![(PathBuf::from("/"), 0)];
            while let Some((dir, i)) = todo.pop() {
                if stop.load(Ordering::Relaxed) {
                    listing.interrupted = true;
                    return listing;
                }
                let Some(part) = parts.get(i) else {
                    self.consider(fs, dir, None, &mut seen, &mut listing);
                    continue;
                };
                match part {
                    Part::Literal(name) => {
                        let next = dir.join(name);
                        if i + 1 == parts.len() {
                            self.consider(fs, next, None, &mut seen, &mut listing);
                        } else {
                            todo.push((next, i + 1));
                        }
                    }
                    Part::Glob(_) | Part::Any => {
                        dirs_listed += 1;
                        if dirs_listed > MAX_DIRS_PER_EXPANSION {
                            listing.failed.push((
                                dir,
                                std::io::Error::other(format!(
                                    "more than {MAX_DIRS_PER_EXPANSION} directories to list; narrow the glob"
                                )),
                            ));
                            listing.interrupted = true;
                            return listing;
                        }
                        let entries = match fs.list(&dir) {
                            Ok(e) => e,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => continue,
                            Err(e) => {
                                listing.failed.push((dir, e));
                                continue;
                            }
                        };
                        match part {
                            Part::Glob(p) => {
                                for e in entries.iter().filter(|e| p.matches_with(&e.name, MATCH)) {
                                    let next = dir.join(&e.name);
                                    if i + 1 == parts.len() {
                                        let symlink = Some(e.is_symlink);
                                        self.consider(fs, next, symlink, &mut seen, &mut listing);
                                    } else if e.is_dir {
                                        todo.push((next, i + 1));
                                    }
                                }
                            }
                            _ => {
                                // `**` matches no directory (go on with the next part here)
                                // or one more level (stay on `**` there).
                                todo.push((dir.clone(), i + 1));
                                for e in entries.iter().filter(|e| e.is_dir && !e.is_symlink) {
                                    todo.push((dir.join(&e.name), i));
                                }
                            }
                        }
                    }
                }
            }
        }
        listing
    }

    /// Adds `path` to the listing if it is a regular file the excludes let through; `symlink`
    /// when its listing already said whether it is a symbolic link.
    fn consider<F: Fs>(
        &self,
        fs: &F,
        path: PathBuf,
        symlink: Option<bool>,
        seen: &mut HashSet<PathBuf>,
        listing: &mut Listing,
    ) {
        if self.exclude.iter().any(|x| x.matches_path(&path)) || !seen.insert(path.clone()) {
            return;
        }
        match fs.stat(&path) {
            Ok(meta) if meta.is_file && !meta.special => listing.found.push(Found {
                symlink: symlink.unwrap_or_else(|| fs.is_symlink(&path)),
                path,
                meta,
            }),
            Ok(meta) if meta.is_file => listing.skipped.push((path, super::fs::ON_SPECIAL_FS)),
            Ok(_) => {
                let why = fs.not_regular(&path);
                listing.skipped.push((path, why));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => listing.failed.push((super::fs::parent(&path), e)),
        }
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
    /// A [`Wake::Data`] was sent and no pass has started since: more data events send
    /// nothing (hundreds of busy files make thousands a second; one wake reads them all).
    data_pending: Arc<AtomicBool>,
}

/// The wake an event asks for, if any. A data event asks for one only when none is pending
/// (`pending`, cleared by [`Watcher::pass_starts`]); events about names always ask.
fn wake_for(event: &notify::Result<notify::Event>, pending: &AtomicBool) -> Option<Wake> {
    match event {
        Ok(e) => match e.kind {
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => None,
            EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => {
                (!pending.swap(true, Ordering::AcqRel)).then_some(Wake::Data)
            }
            _ => Some(Wake::Rescan),
        },
        Err(_) => Some(Wake::Rescan),
    }
}

impl Watcher {
    /// A watcher that sends to `wake`; when notifications are unavailable (or `enabled` is
    /// false) it watches nothing and the source relies on polling.
    pub fn new(wake: Sender<Wake>, enabled: bool) -> (Watcher, Option<String>) {
        let polling = |problem| {
            let w = Watcher {
                inner: None,
                watched: HashSet::new(),
                data_pending: Arc::new(AtomicBool::new(false)),
            };
            (w, problem)
        };
        if !enabled {
            return polling(None);
        }
        let data_pending = Arc::new(AtomicBool::new(false));
        let pending = data_pending.clone();
        let handler = move |event: notify::Result<notify::Event>| {
            if let Some(w) = wake_for(&event, &pending) {
                let _ = wake.send(w);
            }
        };
        match notify::recommended_watcher(handler) {
            Ok(w) => (
                Watcher {
                    inner: Some(w),
                    watched: HashSet::new(),
                    data_pending,
                },
                None,
            ),
            Err(e) => polling(Some(format!(
                "file notifications unavailable, polling only: {e}"
            ))),
        }
    }

    /// Called before a pass reads the files: a data event from now on wakes the source again
    /// (what came before is read by this pass).
    pub fn pass_starts(&self) {
        self.data_pending.store(false, Ordering::Release);
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
    use notify::event::{CreateKind, DataChange, MetadataKind};

    #[test]
    fn one_data_wake_until_a_pass_starts_names_always_wake() {
        let pending = AtomicBool::new(false);
        let data = Ok(notify::Event::new(EventKind::Modify(ModifyKind::Data(
            DataChange::Any,
        ))));
        let create = Ok(notify::Event::new(EventKind::Create(CreateKind::File)));
        let meta = Ok(notify::Event::new(EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any,
        ))));
        assert_eq!(wake_for(&data, &pending), Some(Wake::Data));
        assert_eq!(wake_for(&data, &pending), None);
        assert_eq!(wake_for(&meta, &pending), None);
        assert_eq!(wake_for(&create, &pending), Some(Wake::Rescan));
        assert_eq!(wake_for(&create, &pending), Some(Wake::Rescan));
        assert_eq!(
            wake_for(&Err(notify::Error::generic("overflow")), &pending),
            Some(Wake::Rescan)
        );
        // A pass started (Watcher::pass_starts): the next data event wakes again.
        pending.store(false, Ordering::Release);
        assert_eq!(wake_for(&data, &pending), Some(Wake::Data));
    }

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
