//! Finding the files a file source reads, and being told when they change.
//!
//! Globs (`*`, `?`, `[..]`, `**`) are expanded by a walk of their own, component by component
//! (the `glob` crate's patterns match the names), so that a directory that cannot be listed is
//! reported as such instead of looking empty, `**` never follows a symlinked directory into a
//! loop, and a shutdown can stop a walk over a huge tree. Notifications come from `notify`
//! (inotify on Linux), on the directories the globs can match in; they only wake the source,
//! which then re-checks files itself, so a lost or unsupported notification costs latency (one
//! poll interval), never data. With `watch: names` the kernel sends only the changes of names
//! (no event per write); they wake nothing and only tell the next poll which directories to
//! list again ([`Watcher::take_changed`]).

use foldhash::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use super::fs::FileId;
use super::fs::{parent_key, path_key, path_key_owned, Fs, Meta};

use notify::event::{EventKind, EventKindMask, ModifyKind};
use notify::{RecursiveMode, Watcher as _};

use crate::config::WatchMode;

/// Why a source thread wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// File contents changed: read.
    Data,
    /// Files or directories appeared, vanished or were renamed: expand the globs now (before
    /// a new file can go again), then read.
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
    /// Directories whose files were not looked at: their listing is the one kept from the
    /// last scan and provably did not change since ([`Fs::list_kept`]), so every name in them
    /// names the file it named then. A scan takes the files directly in them as it left them
    /// (a rotation in one pod's directory then costs nothing for the other pods' files).
    /// By [`super::fs::path_key`]: asked once per followed file at every scan.
    unchanged: HashSet<Vec<u8>>,
    /// [`Fs::birth_clock`] when the expansion began: a file born after it cannot have been
    /// looked at by it.
    pub began: Option<u64>,
}

impl Listing {
    /// Whether `path` lies under a directory that could not be listed this time.
    pub fn unseen(&self, path: &Path) -> bool {
        self.interrupted || self.failed.iter().any(|(dir, _)| path.starts_with(dir))
    }

    /// Whether `path` is directly in a directory whose files were not looked at (unchanged
    /// since the last scan).
    pub fn is_unchanged(&self, path: &Path) -> bool {
        !self.unchanged.is_empty()
            && parent_key(path).is_some_and(|d| self.unchanged.contains(d.as_ref()))
    }

    /// Whether the files directly in `dir` were not looked at (see [`Self::is_unchanged`]).
    pub fn left_alone(&self, dir: &Path) -> bool {
        self.unchanged.contains(path_key(dir).as_ref())
    }

    /// Whether the files of some directories were not looked at (see [`Self::left_alone`]).
    pub fn is_partial(&self) -> bool {
        !self.unchanged.is_empty()
    }
}

/// One component of a pattern.
#[derive(Clone)]
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

/// Whether a directory entry's `name` matches `pattern`. A lone `*` (a pod's directory, a
/// container's: every level of a node's `pods/*/*/*.log`) matches every name without the
/// glob matcher, which costs more than the rest of a kept directory's look.
fn name_matches(pattern: &glob::Pattern, name: &str) -> bool {
    pattern.as_str() == "*" || pattern.matches_with(name, MATCH)
}

/// Most directories one expansion lists (a `**` over a huge tree stops there, with an error).
const MAX_DIRS_PER_EXPANSION: usize = 100_000;

/// The compiled globs of one source.
#[derive(Clone)]
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

    /// Whether a change at `path` can change what the globs match: the path matches a
    /// pattern, or is a directory on the way to matches (a prefix of a pattern). A name no
    /// pattern can reach (a rotated `0.log.20261205-…`, its `.gz`) cannot; excludes are not
    /// applied (a needless rescan costs only time).
    pub fn concerns(&self, path: &Path) -> bool {
        let names: Vec<&std::ffi::OsStr> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s),
                _ => None,
            })
            .collect();
        self.parts.iter().any(|parts| may_lead_to(&names, parts))
    }

    /// Every regular file the patterns match now, each path once, with the directories that
    /// could not be listed. Symlinked directories are not descended by `**` (no loops); `stop`
    /// ends the walk early (the listing then says it was interrupted).
    pub fn expand<F: Fs>(&self, fs: &F, stop: &AtomicBool) -> Listing {
        let mut listing = Listing {
            began: fs.birth_clock(),
            ..Listing::default()
        };
        let mut seen = HashSet::default();
        // Directories whose files this expansion looked at: a second pattern listing one
        // again gets the listing just kept, but its files were not left alone.
        let mut looked_in: HashSet<Vec<u8>> = HashSet::default();
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
                        let (entries, kept) = match fs.list_kept(&dir) {
                            Ok(e) => e,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => continue,
                            Err(e) => {
                                listing.failed.push((dir, e));
                                continue;
                            }
                        };
                        match part {
                            Part::Glob(p) if i + 1 == parts.len() => {
                                // The files of a directory that did not change since the last
                                // scan are as that scan left them: not looked at again.
                                if kept && !looked_in.contains(path_key(&dir).as_ref()) {
                                    listing.unchanged.insert(path_key_owned(dir));
                                    continue;
                                }
                                looked_in.insert(path_key(&dir).into_owned());
                                let looked = (listing.failed.len(), listing.skipped.len());
                                for e in entries.iter().filter(|e| name_matches(p, &e.name)) {
                                    let next = dir.join(&e.name);
                                    let symlink = Some(e.is_symlink);
                                    self.consider(fs, next, symlink, &mut seen, &mut listing);
                                }
                                // What could not be looked at, or is not read, is looked at
                                // again by every scan (its error or reason stays shown).
                                if looked != (listing.failed.len(), listing.skipped.len()) {
                                    fs.forget_listing(&dir);
                                }
                            }
                            Part::Glob(p) => {
                                for e in entries.iter().filter(|e| name_matches(p, &e.name)) {
                                    if e.is_dir {
                                        todo.push((dir.join(&e.name), i + 1));
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
        let mut dirs = HashSet::default();
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

/// Whether `names` (a path's components) match the first parts of `parts`, all of them or
/// fewer (a directory on the way).
fn may_lead_to(names: &[&std::ffi::OsStr], parts: &[Part]) -> bool {
    let Some((name, rest)) = names.split_first() else {
        return true;
    };
    let Some((part, later)) = parts.split_first() else {
        return false;
    };
    match part {
        Part::Literal(l) => **name == **l && may_lead_to(rest, later),
        Part::Glob(g) => name_matches(g, &name.to_string_lossy()) && may_lead_to(rest, later),
        // `**`: no directory, or this one and maybe more.
        Part::Any => may_lead_to(names, later) || may_lead_to(rest, parts),
    }
}

fn is_glob(component: Component) -> bool {
    matches!(component, Component::Normal(s) if s.to_string_lossy().contains(['*', '?', '[']))
}

/// Inotify watches on directories, kept in step with [`Globs::watch_dirs`].
pub struct Watcher {
    inner: Option<notify::RecommendedWatcher>,
    /// What the notifications are for ([`WatchMode::Off`] when there are none).
    mode: WatchMode,
    watched: HashSet<(PathBuf, bool)>,
    /// With [`WatchMode::Names`]: the directories whose names changed since the last
    /// [`Watcher::take_changed`].
    changed: Arc<Mutex<Changed>>,
    /// A [`Wake::Data`] was sent and no pass has started since: more data events send
    /// nothing (hundreds of busy files make thousands a second; one wake reads them all).
    data_pending: Arc<AtomicBool>,
    /// The paths data events named since the last pass started.
    named: Arc<Mutex<Named>>,
}

/// The files data events named since a pass started: a pass with no reason to look at every
/// file (no rescan, no poll) reads only these (and the files that are not simply followed).
#[derive(Debug, Default)]
pub struct Named {
    /// The paths, as the events gave them (the watched directory joined with the name); a
    /// path repeats when events for other files came between.
    pub paths: Vec<PathBuf>,
    /// Too many to keep, or an event without a path: the pass reads every file.
    pub all: bool,
}

/// The directories whose entries changed since the last poll, as notifications of names said
/// ([`WatchMode::Names`]). A directory not named kept its entries since it was last listed,
/// as long as every watch was in place (see [`Changed::untrusted`]).
#[derive(Debug, Default)]
pub struct Changed {
    /// Directories named (the parent of each path an event gave, and the path itself: a
    /// directory removed or renamed takes what was listed under it along).
    pub dirs: HashSet<PathBuf>,
    /// An event without a path (the kernel's queue overflowed) or a watch was added: no kept
    /// listing can be trusted, every directory is listed afresh.
    pub all: bool,
    /// False for good once the watcher reported an error (a watch that could not be added on
    /// a new directory, say): a directory may have changed with no notification, so from then
    /// on kept listings are checked by the directory's times, as without notifications.
    pub untrusted: bool,
}

impl Changed {
    fn note(&mut self, event: &notify::Result<notify::Event>) {
        match event {
            Ok(e) if !e.paths.is_empty() => {
                for p in &e.paths {
                    if let Some(parent) = p.parent() {
                        self.dirs.insert(parent.to_path_buf());
                    }
                    self.dirs.insert(p.clone());
                }
            }
            Ok(_) => self.all = true,
            Err(_) => {
                self.all = true;
                self.untrusted = true;
            }
        }
    }
}

/// More named paths than this between two passes: the pass reads every file instead (a set
/// this large costs more to keep than a full pass).
const NAMED_MAX: usize = 4096;

impl Named {
    fn note(&mut self, paths: &[PathBuf]) {
        if self.all {
            return;
        }
        if paths.is_empty() || self.paths.len() + paths.len() > NAMED_MAX {
            self.all = true;
            self.paths = Vec::new();
            return;
        }
        for p in paths {
            // A busy file's writes in a row are one entry.
            if self.paths.last() != Some(p) {
                self.paths.push(p.clone());
            }
        }
    }
}

/// What the notify thread calls with each event.
type EventHandler = Box<dyn FnMut(notify::Result<notify::Event>) + Send>;

/// A lock that a panic elsewhere does not poison for good (the data is a set of names).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// When data events come this close together, the watcher's thread waits [`DATA_PACE`] before
/// it takes the next ones: the kernel queues them meanwhile and they come in one read, instead of
/// one thread wake-up (and context switch) per write on a node of busy files. An event after a
/// quiet spell is passed on at once, so a quiet file's latency is unchanged.
const DATA_PACE: Duration = Duration::from_millis(2);

/// The wait instead of [`DATA_PACE`] while a data wake is already pending: the source's next
/// pass is coming (spaced by its own pace), so the events meanwhile only add paths to read.
/// The kernel's queue holds 16,384 events by default, far more than this wait gathers.
const PENDING_PACE: Duration = Duration::from_millis(20);

/// The watcher thread's pacing (see [`DATA_PACE`]): at most one pause per `DATA_PACE` of
/// events handled, so the events of one read that follow a pause pass without waiting.
#[derive(Default)]
struct Pace {
    last_data: Option<Instant>,
    last_pause: Option<Instant>,
}

impl Pace {
    /// A data event was handled at `now`; `pending`: a data wake is out and no pass started.
    fn data_event(&mut self, now: Instant, pending: bool) {
        let dense = self
            .last_data
            .is_some_and(|t| now.duration_since(t) < DATA_PACE);
        let paused_lately = self
            .last_pause
            .is_some_and(|t| now.duration_since(t) < DATA_PACE);
        self.last_data = Some(now);
        if dense && !paused_lately {
            std::thread::sleep(if pending { PENDING_PACE } else { DATA_PACE });
            self.last_pause = Some(Instant::now());
        }
    }
}

/// The wake an event asks for, if any. A data event asks for one only when none is pending
/// (`pending`, cleared by [`Watcher::pass_starts`]), and its paths are noted first (`named`);
/// events about names always ask.
fn wake_for(
    event: &notify::Result<notify::Event>,
    pending: &AtomicBool,
    named: &Mutex<Named>,
    globs: &Globs,
) -> Option<Wake> {
    match event {
        Ok(e) => match e.kind {
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => None,
            EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => {
                lock(named).note(&e.paths);
                (!pending.swap(true, Ordering::AcqRel)).then_some(Wake::Data)
            }
            // A name changed where no pattern reaches: nothing to rescan for (a rotated file
            // being compressed, say). An event without a path (a queue overflow) rescans.
            _ if !e.paths.is_empty() && !e.paths.iter().any(|p| globs.concerns(p)) => None,
            _ => Some(Wake::Rescan),
        },
        Err(_) => Some(Wake::Rescan),
    }
}

impl Watcher {
    /// A watcher of the directories of `globs` that sends to `wake` (a name change only when
    /// the globs can see it); with [`WatchMode::Names`] it sends nothing and notes the
    /// directories whose names changed. When notifications are unavailable (or `mode` is
    /// [`WatchMode::Off`]) it watches nothing and the source relies on polling.
    pub fn new(wake: Sender<Wake>, mode: WatchMode, globs: Globs) -> (Watcher, Option<String>) {
        let data_pending = Arc::new(AtomicBool::new(false));
        let named = Arc::new(Mutex::new(Named::default()));
        let changed = Arc::new(Mutex::new(Changed::default()));
        let polling = |problem| {
            let w = Watcher {
                inner: None,
                mode: WatchMode::Off,
                watched: HashSet::default(),
                changed: changed.clone(),
                data_pending: data_pending.clone(),
                named: named.clone(),
            };
            (w, problem)
        };
        let names = EventKindMask::CREATE | EventKindMask::REMOVE | EventKindMask::MODIFY_NAME;
        let (kinds, handler): (EventKindMask, EventHandler) = match mode {
            WatchMode::Off => return polling(None),
            WatchMode::Names => {
                let noted = changed.clone();
                let handler = move |event: notify::Result<notify::Event>| {
                    lock(&noted).note(&event);
                };
                (names, Box::new(handler))
            }
            WatchMode::All => {
                let (pending, noted) = (data_pending.clone(), named.clone());
                let mut pace = Pace::default();
                let handler = move |event: notify::Result<notify::Event>| {
                    let asked = wake_for(&event, &pending, &noted, &globs);
                    let data = matches!(
                        &event,
                        Ok(e) if matches!(e.kind, EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any))
                    );
                    if let Some(w) = asked {
                        let _ = wake.send(w);
                    }
                    if data {
                        pace.data_event(Instant::now(), pending.load(Ordering::Acquire));
                    }
                };
                // Access and metadata events are of no use here: the kernel is not asked
                // for them.
                (names | EventKindMask::MODIFY_DATA, Box::new(handler))
            }
        };
        let config = notify::Config::default().with_event_kinds(kinds);
        match <notify::RecommendedWatcher as notify::Watcher>::new(handler, config) {
            Ok(w) => (
                Watcher {
                    inner: Some(w),
                    mode,
                    watched: HashSet::default(),
                    changed,
                    data_pending,
                    named,
                },
                None,
            ),
            Err(e) => polling(Some(format!(
                "file notifications unavailable, polling only: {e}"
            ))),
        }
    }

    /// What the notifications are for: [`WatchMode::Off`] when there are none.
    pub fn mode(&self) -> WatchMode {
        self.mode
    }

    /// With [`WatchMode::Names`]: the directories whose names changed since the last call
    /// (taken before a scan lists: what changes during the scan is noted for the next).
    pub fn take_changed(&self) -> Changed {
        let mut changed = lock(&self.changed);
        let untrusted = changed.untrusted;
        let taken = std::mem::take(&mut *changed);
        changed.untrusted = untrusted;
        taken
    }

    /// Called before a pass reads the files: a data event from now on wakes the source again
    /// (what came before is read by this pass). Returns the paths named since the last pass
    /// (taken after the flag is cleared, so that no path is left without a wake).
    pub fn pass_starts(&self) -> Named {
        self.data_pending.store(false, Ordering::Release);
        // The globs are absolute (resolved against the config's canonical directory), as
        // the paths of inotify's events are: they name the same files the same way.
        std::mem::take(&mut *lock(&self.named))
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
        // What `take_changed` gives, kept with `WatchMode::Names` only (the mode that takes it).
        let (mode, changed) = (self.mode, &self.changed);
        let note_names = |note: fn(&mut Changed)| {
            if mode == WatchMode::Names {
                note(&mut lock(changed));
            }
        };
        let mut errors = Vec::new();
        for (dir, _) in self.watched.difference(&dirs) {
            let _ = inner.unwatch(dir);
        }
        let mut now = HashSet::default();
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
                    // What changed in it before the watch was in place came with no
                    // notification: the next scan lists every directory afresh.
                    note_names(|c| c.all = true);
                    now.insert((dir, recursive));
                }
                Err(e) => {
                    // Its changes come with no notification: kept listings are checked by
                    // their directory's times from now on.
                    note_names(|c| c.untrusted = true);
                    errors.push(format!("cannot watch {}: {e}", dir.display()));
                }
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
        let named = Mutex::new(Named::default());
        let globs = Globs::new(vec!["/x/*.log".into()], &[]);
        let data = Ok(
            notify::Event::new(EventKind::Modify(ModifyKind::Data(DataChange::Any)))
                .add_path(PathBuf::from("/x/a.log")),
        );
        let create = Ok(notify::Event::new(EventKind::Create(CreateKind::File))
            .add_path(PathBuf::from("/x/b.log")));
        let elsewhere = Ok(notify::Event::new(EventKind::Create(CreateKind::File))
            .add_path(PathBuf::from("/x/b.log.1.gz")));
        let overflow = Ok(notify::Event::new(EventKind::Other));
        let meta = Ok(notify::Event::new(EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any,
        ))));
        assert_eq!(wake_for(&data, &pending, &named, &globs), Some(Wake::Data));
        assert_eq!(wake_for(&data, &pending, &named, &globs), None);
        assert_eq!(wake_for(&meta, &pending, &named, &globs), None);
        assert_eq!(
            wake_for(&create, &pending, &named, &globs),
            Some(Wake::Rescan)
        );
        assert_eq!(
            wake_for(&create, &pending, &named, &globs),
            Some(Wake::Rescan)
        );
        assert_eq!(
            wake_for(
                &Err(notify::Error::generic("overflow")),
                &pending,
                &named,
                &globs
            ),
            Some(Wake::Rescan)
        );
        // A name no glob reaches: no rescan; an event without paths (an overflow): a rescan.
        assert_eq!(wake_for(&elsewhere, &pending, &named, &globs), None);
        assert_eq!(
            wake_for(&overflow, &pending, &named, &globs),
            Some(Wake::Rescan)
        );
        assert_eq!(
            named.lock().unwrap().paths,
            [PathBuf::from("/x/a.log")],
            "the data events' path, once"
        );
        // A pass started (Watcher::pass_starts): the next data event wakes again.
        pending.store(false, Ordering::Release);
        assert_eq!(wake_for(&data, &pending, &named, &globs), Some(Wake::Data));
    }

    #[test]
    fn a_change_concerns_the_globs_on_the_way_to_a_match_only() {
        let globs = Globs::new(
            vec![
                "/var/log/pods/*/*/*.log".into(),
                "/srv/**/app.log".into(),
                "/etc/plain.log".into(),
            ],
            &[],
        );
        for yes in [
            "/var/log/pods/ns_pod_uid/app/0.log",
            "/var/log/pods/ns_pod_uid/app",
            "/var/log/pods/ns_pod_uid",
            "/var/log/pods",
            "/var",
            "/srv/a/b/c/app.log",
            "/srv/app.log",
            "/srv/a/b",
            // Under `**` any name may be a directory on the way.
            "/srv/a/app.log.1",
            "/etc/plain.log",
            "/etc",
        ] {
            assert!(globs.concerns(Path::new(yes)), "{yes}");
        }
        for no in [
            "/var/log/pods/ns_pod_uid/app/0.log.20261205-101010",
            "/var/log/pods/ns_pod_uid/app/0.log.20261205-101010.gz",
            "/var/log/pods/ns_pod_uid/app/0.log/deeper",
            "/var/log/other",
            "/etc/other.log",
            "/tmp/x.log",
        ] {
            assert!(!globs.concerns(Path::new(no)), "{no}");
        }
    }

    /// A scan woken by a notification leaves the files of a directory whose kept listing
    /// provably did not change alone, and looks at every file of one that changed; a
    /// directory with something that is not read, or listed twice by one expansion, is never
    /// left alone.
    #[test]
    fn unchanged_directories_are_left_alone_only_while_nothing_in_them_changed() {
        use super::super::fs::{Listings, RealFs};
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        for d in [&a, &b, &c] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("1.log"), "x\n").unwrap();
        }
        let fifo = std::ffi::CString::new(c.join("2.log").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let base = tmp.path().to_str().unwrap();
        let globs = Globs::new(
            vec![format!("{base}/*/*.log"), format!("{base}/a/1.log")],
            &[],
        );
        let fs = RealFs::new();
        fs.listings(Listings::Reuse);
        let stop = AtomicBool::new(false);
        let found = |l: &Listing| {
            let mut f: Vec<PathBuf> = l.found.iter().map(|f| f.path.clone()).collect();
            f.sort();
            f
        };
        std::thread::sleep(Duration::from_millis(1200));
        let first = globs.expand(&fs, &stop);
        assert!(!first.is_partial(), "{:?}", first.unchanged);
        assert_eq!(first.found.len(), 3);
        assert_eq!(first.skipped.len(), 1, "the FIFO");
        // Nothing changed: a and b are left alone; c (its FIFO is not read) is looked at.
        let second = globs.expand(&fs, &stop);
        assert!(second.left_alone(&a) && second.left_alone(&b), "{second:?}");
        assert_eq!(second.unchanged.len(), 2, "{second:?}");
        // a/1.log is also matched by the second pattern (a literal name, no listing).
        assert_eq!(found(&second), [a.join("1.log"), c.join("1.log")]);
        assert_eq!(second.skipped.len(), 1, "still said");
        assert!(second.is_unchanged(&b.join("1.log")));
        assert!(!second.is_unchanged(&c.join("1.log")));
        // Content written: names unchanged, still left alone.
        std::fs::write(b.join("1.log"), "x\ny\n").unwrap();
        assert!(globs.expand(&fs, &stop).left_alone(&b));
        // A name added: b is looked at again, whole.
        std::fs::write(b.join("2.log"), "z\n").unwrap();
        let third = globs.expand(&fs, &stop);
        assert!(!third.left_alone(&b));
        assert!(third.left_alone(&a));
        assert!(found(&third).contains(&b.join("2.log")));
        assert!(found(&third).contains(&b.join("1.log")));
        // The poll lists afresh: nothing is left alone.
        fs.listings(Listings::Renew);
        assert!(!globs.expand(&fs, &stop).is_partial());
        // Two patterns listing one directory in one expansion: the second gets the listing
        // the first just kept, but the files were looked at.
        let twice = Globs::new(
            vec![format!("{base}/a/*.log"), format!("{base}/a/1.l*")],
            &[],
        );
        let fresh = RealFs::new();
        fresh.listings(Listings::Reuse);
        let l = twice.expand(&fresh, &stop);
        assert!(!l.is_partial(), "{:?}", l.unchanged);
        assert_eq!(found(&l), [a.join("1.log")]);
    }

    /// A lone `*` taken without the glob matcher answers as the matcher does, dot files and
    /// odd names included.
    #[test]
    fn a_lone_star_matches_every_name_as_the_glob_matcher_does() {
        let star = glob::Pattern::new("*").unwrap();
        for name in [
            "a",
            ".hidden",
            ".",
            "..",
            "with space",
            "ünïcödé",
            "[x]",
            "*",
            "?",
            "-",
            "a\\b",
            "0.log.20261207-101500.gz",
        ] {
            assert_eq!(
                name_matches(&star, name),
                star.matches_with(name, MATCH),
                "{name:?}"
            );
            assert!(name_matches(&star, name), "{name:?}");
        }
        let other = glob::Pattern::new("*.log").unwrap();
        assert!(name_matches(&other, "0.log") && !name_matches(&other, "0.log.1"));
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

    /// With `watch: names`, the kernel's notifications of names tell which directories to list
    /// again: a kept listing is given with no look at its directory until a notification names
    /// it (or a directory above it), and then every name added, renamed or removed is seen.
    /// Writes are not notified, and nothing wakes the source.
    #[test]
    fn notifications_of_names_say_which_kept_listings_are_stale() {
        use super::super::fs::{Listings, RealFs};
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("pods");
        let pod = root.join("ns_a_1");
        let container = pod.join("app");
        std::fs::create_dir_all(&container).unwrap();
        std::fs::write(container.join("0.log"), "x\n").unwrap();
        let globs = Globs::new(vec![format!("{}/*/*/*.log", root.display())], &[]);
        let (wake, woken) = std::sync::mpsc::channel();
        let (mut watcher, problem) = Watcher::new(wake, WatchMode::Names, globs.clone());
        assert!(problem.is_none(), "{problem:?}");
        assert_eq!(watcher.mode(), WatchMode::Names);
        assert!(watcher.update(globs.watch_dirs()).is_empty());
        assert!(
            watcher.take_changed().all,
            "a watch added: nothing kept is trusted"
        );
        let fs = RealFs::new();
        fs.listings(Listings::Notified);
        // Settled, then listed: kept, and given again with no look at the directory.
        std::thread::sleep(Duration::from_millis(1200));
        let names = |dir: &Path| {
            let (entries, kept) = fs.list_kept(dir).unwrap();
            let mut n: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
            n.sort();
            (n, kept)
        };
        assert_eq!(names(&container), (vec!["0.log".to_owned()], false));
        assert_eq!(names(&container), (vec!["0.log".to_owned()], true));
        assert!(!names(&pod).1);
        assert!(names(&pod).1);
        // Until a notification names it, the kept listing is given (this is what a poll
        // saves: no look at an unchanged directory).
        let changed_soon = |what: &Path| {
            let start = Instant::now();
            let mut seen = HashSet::default();
            while !seen.contains(what) {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "{what:?}: {seen:?}"
                );
                std::thread::sleep(Duration::from_millis(10));
                let c = watcher.take_changed();
                assert!(!c.all && !c.untrusted);
                seen.extend(c.dirs);
            }
            seen
        };
        std::fs::rename(container.join("0.log"), container.join("0.log.20261207")).unwrap();
        std::fs::write(container.join("0.log"), "").unwrap();
        let seen = changed_soon(&container);
        fs.forget_changed(&seen);
        assert_eq!(
            names(&container),
            (vec!["0.log".to_owned(), "0.log.20261207".to_owned()], false)
        );
        assert!(names(&pod).1, "only the directory named is forgotten");
        // Writes are not notified.
        std::thread::sleep(Duration::from_millis(1200));
        assert!(!names(&container).1, "settled now: listed and kept");
        assert!(names(&container).1);
        for _ in 0..50 {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(container.join("0.log"))
                .unwrap();
            std::io::Write::write_all(&mut f, b"y\n").unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(watcher.take_changed().dirs.is_empty());
        // A pod directory removed and created again: what was kept under it is forgotten
        // with it, though the new container directory's own creation may come unnoticed.
        assert!(names(&container).1 && names(&pod).1);
        std::fs::remove_dir_all(&pod).unwrap();
        std::fs::create_dir_all(&container).unwrap();
        std::fs::write(container.join("1.log"), "z\n").unwrap();
        let seen = changed_soon(&pod);
        fs.forget_changed(&seen);
        assert_eq!(names(&container), (vec!["1.log".to_owned()], false));
        assert!(
            woken.try_recv().is_err(),
            "notifications of names wake nothing"
        );
    }
}
