//! The status board's memory: the last state changes of every component, and the last hour of
//! each headline gauge, bounded, kept across reloads and (with `--storage.path`) restarts.
//!
//! A sampler reads the state families every second (and every page request reads them once
//! more first), so a change is seen within a second without touching the update path: the
//! registry stays the only owner of series. A change is `(unix second, state)`; a component
//! gone from its family gets an "absent" change, which the timeline shows as a gap and the
//! shares of time leave out. State names, not levels, are kept, so a reload that reorders a
//! metric's states does not rewrite the past.
//!
//! Bounds: [`MAX_CHANGES`] per component (the oldest go first, and none older than
//! [`KEEP`]), [`MAX_COMPONENTS`] components (absent ones are forgotten first; beyond that new
//! ones have no history until room is made), [`MAX_SAMPLES`] samples for each of at most
//! [`MAX_HEADLINE_SERIES`] series per headline.
//!
//! The file, `status-history.json` in the storage directory (beside the checkpoint, whose
//! format it does not touch), is written like the checkpoint: a fresh temporary file, fsync,
//! rename, directory fsync; it is read only if it is a regular file of at most
//! [`MAX_FILE_BYTES`]. A file that cannot be read is logged and ignored: history is a
//! convenience, never a reason not to start.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::config::UNKNOWN_STATE;
use crate::registry::Families;

/// State changes kept per component: with a change a minute, the last four hours.
pub const MAX_CHANGES: usize = 256;
/// Components with history (a family holds up to `max_series`; tiles beyond this have none).
pub const MAX_COMPONENTS: usize = 10_000;
/// Changes older than this are forgotten (the longest share of time is a week).
pub const KEEP: u64 = 8 * 86_400;
/// Headline series sampled per headline metric.
pub const MAX_HEADLINE_SERIES: usize = 8;
/// Samples per headline series: an hour at one every [`SAMPLE_EVERY`] seconds.
pub const MAX_SAMPLES: usize = 360;
/// Seconds between headline samples.
pub const SAMPLE_EVERY: u64 = 10;
/// The history file's name in the storage directory.
pub const FILE_NAME: &str = "status-history.json";
/// The largest history file read back (what [`MAX_COMPONENTS`] × [`MAX_CHANGES`] can write is
/// well below this).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The state index of "not there" (the component was gone from its family, or the exporter
/// was not running).
const ABSENT: u16 = u16::MAX;

/// One component's past: its state names (interned per component) and changes, oldest first.
#[derive(Debug, Default, Clone)]
struct Track {
    names: Vec<Arc<str>>,
    /// (unix second, index into `names` or [`ABSENT`]).
    changes: VecDeque<(u32, u16)>,
}

impl Track {
    fn current(&self) -> Option<&str> {
        match self.changes.back() {
            Some((_, i)) if *i != ABSENT => Some(&self.names[*i as usize]),
            _ => None,
        }
    }

    fn push(&mut self, at: u32, state: Option<&str>) {
        let index = match state {
            None => ABSENT,
            Some(name) => match self.names.iter().position(|n| &**n == name) {
                Some(i) => i as u16,
                None => {
                    // State names are a metric's few declared ones; a component that somehow
                    // cycles through more is bounded here too.
                    if self.names.len() >= 64 {
                        return;
                    }
                    self.names.push(Arc::from(name));
                    (self.names.len() - 1) as u16
                }
            },
        };
        if self.changes.back().map(|(_, i)| *i) == Some(index) {
            return;
        }
        self.changes.push_back((at, index));
        while self.changes.len() > MAX_CHANGES {
            self.changes.pop_front();
        }
        // Older than KEEP is not needed, but the change before the cut-off is: it says what
        // the state was when the oldest window starts.
        let cutoff = at.saturating_sub(KEEP as u32);
        while self.changes.len() > 1 && self.changes[1].0 <= cutoff {
            self.changes.pop_front();
        }
    }

    fn name(&self, index: u16) -> Option<&str> {
        (index != ABSENT).then(|| &*self.names[index as usize])
    }
}

/// A stretch of time in one state (`None`: not seen: absent, or before the history starts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    /// Unix seconds.
    pub from: u64,
    /// Unix seconds.
    pub to: u64,
    /// The state, or `null` for a gap.
    pub state: Option<String>,
}

/// Time spent in each state over a window.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Share {
    /// Seconds of the window the history covers (absent time and time before the history
    /// starts are not covered).
    pub covered_seconds: u64,
    /// Fraction of the covered time per state, in the order the states were first taken
    /// (states never taken are left out).
    pub states: Vec<StateShare>,
}

/// One state's fraction of the covered time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateShare {
    pub state: String,
    pub fraction: f64,
}

/// What the board reads of one component's past.
#[derive(Debug, Clone, Default)]
pub struct Past {
    /// Since when the component has been in its current state (absent stretches between two
    /// equal states, such as a restart, do not end it).
    pub since: Option<u64>,
    /// The timeline over the requested window, oldest first.
    pub timeline: Vec<Segment>,
    /// Shares of the last day and the last week.
    pub day: Share,
    pub week: Share,
}

/// The board's memory (shared by the sampler, the page and the saver).
#[derive(Default)]
pub struct History {
    inner: Mutex<Inner>,
}

/// A series: its metric and key.
type SeriesId = (String, Box<[u8]>);

#[derive(Default)]
struct Inner {
    /// metric → series key → track.
    tracks: BTreeMap<String, HashMap<Box<[u8]>, Track>>,
    /// Tracks of components seen since this process started: only those can become absent
    /// (after a restart a component is not gone before its source first reports).
    seen: std::collections::HashSet<(String, Box<[u8]>)>,
    count: usize,
    /// (metric, key) → samples (unix second, value).
    samples: BTreeMap<SeriesId, VecDeque<(u32, f64)>>,
    last_sample: u64,
    /// Changed since the last save.
    dirty: bool,
}

/// A state family's current states: (key, state name), for [`History::observe`].
pub fn current_states(families: &Families, metric: &str) -> Option<Vec<(Box<[u8]>, String)>> {
    let family = families.get(metric)?;
    let states = family.state_names();
    let copy = family.copy();
    Some(
        (0..copy.len())
            .map(|i| {
                let level = copy.values(i)[0];
                let name = if level >= 0.0 && (level as usize) < states.len() {
                    states[level as usize].clone()
                } else {
                    UNKNOWN_STATE.to_owned()
                };
                (copy.key(i).into(), name)
            })
            .collect(),
    )
}

impl History {
    /// Records the current states of `metrics` (and samples `headlines`) at unix second `now`;
    /// metrics not listed are forgotten.
    pub fn observe(&self, now: u64, families: &Families, metrics: &[String], headlines: &[String]) {
        let at = now.min(u32::MAX as u64) as u32;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let inner = &mut *inner;
        let before = inner.tracks.len();
        inner.tracks.retain(|m, _| metrics.contains(m));
        if inner.tracks.len() != before {
            inner.count = inner.tracks.values().map(HashMap::len).sum();
            inner.seen.retain(|(m, _)| metrics.contains(m));
        }
        for metric in metrics {
            let Some(current) = current_states(families, metric) else {
                continue;
            };
            let tracks = inner.tracks.entry(metric.clone()).or_default();
            let mut present = std::collections::HashSet::with_capacity(current.len());
            for (key, state) in &current {
                present.insert(&**key);
                let track = match tracks.get_mut(key) {
                    Some(t) => t,
                    None => {
                        if inner.count >= MAX_COMPONENTS {
                            // Forget one that is gone, if there is one; else no history.
                            let gone = tracks
                                .iter()
                                .filter(|(_, t)| t.current().is_none())
                                .min_by_key(|(_, t)| t.changes.back().map(|c| c.0))
                                .map(|(k, _)| k.clone());
                            match gone {
                                Some(k) => {
                                    tracks.remove(&k);
                                    inner.seen.remove(&(metric.clone(), k));
                                    inner.count -= 1;
                                }
                                None => continue,
                            }
                        }
                        inner.count += 1;
                        tracks.entry(key.clone()).or_default()
                    }
                };
                if track.current() != Some(state.as_str()) {
                    track.push(at, Some(state));
                    inner.dirty = true;
                }
                inner.seen.insert((metric.clone(), key.clone()));
            }
            for (key, track) in tracks.iter_mut() {
                if !present.contains(&**key)
                    && track.current().is_some()
                    && inner.seen.contains(&(metric.clone(), key.clone()))
                {
                    track.push(at, None);
                    inner.dirty = true;
                }
            }
        }
        if now >= inner.last_sample + SAMPLE_EVERY {
            inner.last_sample = now;
            inner.samples.retain(|(m, _), _| headlines.contains(m));
            for metric in headlines {
                let Some(family) = families.get(metric) else {
                    continue;
                };
                let copy = family.copy();
                for i in copy.sorted().into_iter().take(MAX_HEADLINE_SERIES) {
                    let ring = inner
                        .samples
                        .entry((metric.clone(), copy.key(i as usize).into()))
                        .or_default();
                    ring.push_back((at, copy.values(i as usize)[0]));
                    while ring.len() > MAX_SAMPLES {
                        ring.pop_front();
                    }
                }
            }
        }
    }

    /// The past of one component as of `now`, with a timeline of the last `window` seconds.
    pub fn past(&self, metric: &str, key: &[u8], now: u64, window: u64) -> Past {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(track) = inner.tracks.get(metric).and_then(|t| t.get(key)) else {
            return Past::default();
        };
        let mut since = None;
        if let Some(current) = track.changes.back().map(|c| c.1).filter(|i| *i != ABSENT) {
            // Back over this state's run, across absent stretches between equal states.
            for &(t, i) in track.changes.iter().rev() {
                if i == current {
                    since = Some(t as u64);
                } else if i != ABSENT {
                    break;
                }
            }
        }
        Past {
            since,
            timeline: segments(track, now.saturating_sub(window), now),
            day: share(track, now.saturating_sub(86_400), now),
            week: share(track, now.saturating_sub(7 * 86_400), now),
        }
    }

    /// The samples of a headline series, oldest first.
    pub fn samples(&self, metric: &str, key: &[u8]) -> Vec<(u64, f64)> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .samples
            .get(&(metric.to_owned(), key.into()))
            .map(|r| r.iter().map(|(t, v)| (*t as u64, *v)).collect())
            .unwrap_or_default()
    }

    /// Components with history now.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    /// Whether no component has history.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The timeline of `track` over `[start, end)`: gaps where nothing is known.
fn segments(track: &Track, start: u64, end: u64) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut push = |from: u64, to: u64, state: Option<&str>| {
        let (from, to) = (from.max(start), to.min(end));
        if from >= to {
            return;
        }
        match out.last_mut() {
            Some(last) if last.state.as_deref() == state && last.to == from => last.to = to,
            _ => out.push(Segment {
                from,
                to,
                state: state.map(str::to_owned),
            }),
        }
    };
    let first = track.changes.front().map_or(end, |c| c.0 as u64);
    push(start, first, None);
    let n = track.changes.len();
    for (j, &(t, i)) in track.changes.iter().enumerate() {
        let to = if j + 1 < n {
            track.changes[j + 1].0 as u64
        } else {
            end
        };
        push(t as u64, to, track.name(i));
    }
    out
}

fn share(track: &Track, start: u64, end: u64) -> Share {
    let mut seconds: Vec<u64> = vec![0; track.names.len()];
    let mut covered = 0;
    for s in segments(track, start, end) {
        if let Some(state) = &s.state {
            let i = track.names.iter().position(|n| **n == **state).unwrap_or(0);
            seconds[i] += s.to - s.from;
            covered += s.to - s.from;
        }
    }
    Share {
        covered_seconds: covered,
        states: track
            .names
            .iter()
            .zip(seconds)
            .filter(|(_, s)| *s > 0)
            .map(|(n, s)| StateShare {
                state: n.to_string(),
                fraction: s as f64 / covered as f64,
            })
            .collect(),
    }
}

/// The history file's shape (version 1).
#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    /// When it was written (unix seconds): components not seen again after a restart are
    /// absent from then on.
    saved: u64,
    components: Vec<SavedTrack>,
}

#[derive(Serialize, Deserialize)]
struct SavedTrack {
    metric: String,
    /// The series key's label values, in key (alphabetical label name) order.
    key: Vec<String>,
    names: Vec<String>,
    /// (unix second, index into `names`, or -1 for absent).
    changes: Vec<(u32, i32)>,
}

impl History {
    /// Whether something changed since the last [`History::save`].
    pub fn dirty(&self) -> bool {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).dirty
    }

    /// Writes the history to `dir/status-history.json` atomically (tmp, fsync, rename, dir
    /// fsync), at unix second `now`.
    pub fn save(&self, dir: &Path, now: u64) -> std::io::Result<()> {
        let text = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.dirty = false;
            let mut components = Vec::with_capacity(inner.count);
            for (metric, tracks) in &inner.tracks {
                for (key, t) in tracks {
                    components.push(SavedTrack {
                        metric: metric.clone(),
                        key: key
                            .split(|b| *b == crate::registry::KEY_SEPARATOR)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                            .collect(),
                        names: t.names.iter().map(|n| n.to_string()).collect(),
                        changes: t
                            .changes
                            .iter()
                            .map(|(at, i)| (*at, if *i == ABSENT { -1 } else { *i as i32 }))
                            .collect(),
                    });
                }
            }
            serde_json::to_vec(&Saved {
                version: 1,
                saved: now,
                components,
            })
            .map_err(std::io::Error::other)?
        };
        write_atomically(&dir.join(FILE_NAME), &text)
    }

    /// Reads `dir/status-history.json` if there is one; every component it names is absent
    /// from when it was saved until it is seen again.
    pub fn load(dir: &Path) -> Result<History, String> {
        let path = dir.join(FILE_NAME);
        let text = match read_bounded(&path) {
            Ok(Some(t)) => t,
            Ok(None) => return Ok(History::default()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let saved: Saved = serde_json::from_slice(&text)
            .map_err(|e| format!("{}: not a status history: {e}", path.display()))?;
        if saved.version != 1 {
            return Err(format!(
                "{}: history version {} is not one this exporter reads",
                path.display(),
                saved.version
            ));
        }
        let mut inner = Inner::default();
        for c in saved.components.into_iter().take(MAX_COMPONENTS) {
            let names: Vec<Arc<str>> = c.names.iter().map(|n| Arc::from(n.as_str())).collect();
            if names.len() >= ABSENT as usize {
                continue;
            }
            let mut track = Track {
                names,
                changes: VecDeque::new(),
            };
            for (at, i) in c.changes.into_iter().rev().take(MAX_CHANGES).rev() {
                let index = match i {
                    -1 => ABSENT,
                    i if i >= 0 && (i as usize) < track.names.len() => i as u16,
                    _ => continue,
                };
                if track.changes.back().is_some_and(|b| b.0 > at) {
                    continue; // out of order: not one this exporter wrote
                }
                track.changes.push_back((at, index));
            }
            track.push(saved.saved.min(u32::MAX as u64) as u32, None);
            // Keys hold 0xFF between values, which is not UTF-8: joined as bytes.
            let mut bytes = Vec::new();
            for (j, v) in c.key.iter().enumerate() {
                if j > 0 {
                    bytes.push(crate::registry::KEY_SEPARATOR);
                }
                bytes.extend_from_slice(v.as_bytes());
            }
            if inner
                .tracks
                .entry(c.metric)
                .or_default()
                .insert(bytes.into_boxed_slice(), track)
                .is_none()
            {
                inner.count += 1;
            }
        }
        Ok(History {
            inner: Mutex::new(inner),
        })
    }
}

/// Reads `path` if it is a regular file (not through a symlink, without waiting on a FIFO) of
/// at most [`MAX_FILE_BYTES`]; `Ok(None)` when there is nothing there.
fn read_bounded(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
        Ok(m) if !m.file_type().is_file() => {
            return Err(std::io::Error::other("not a regular file"))
        }
        Ok(_) => {}
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than the {MAX_FILE_BYTES} a history can be",
            meta.len()
        )));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut out)?;
    Ok(Some(out))
}

/// Writes `bytes` to `path` so a reader sees the old file or the new one: a fresh temporary
/// file (created exclusively: nothing put at its path is written into), fsync, rename over
/// `path`, fsync of the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp: PathBuf = dir.join(format!(".{FILE_NAME}.tmp"));
    match std::fs::symlink_metadata(&tmp) {
        Ok(m) if m.file_type().is_file() => std::fs::remove_file(&tmp)?,
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is not a regular file; remove it",
                tmp.display()
            )))
        }
        Err(_) => {}
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MetricConfig, MetricKind};
    use crate::registry::Change;
    use crate::selfmetrics::SelfMetrics;

    fn families() -> Families {
        let c = MetricConfig {
            name: "s".into(),
            kind: MetricKind::State,
            help: "S.".into(),
            labels: vec!["k".into()],
            states: Some(vec!["up".into(), "down".into()]),
            ..Default::default()
        };
        Families::build(&[c], &SelfMetrics::new())
    }

    #[test]
    fn changes_absences_since_and_shares() {
        let f = families();
        let h = History::default();
        let m = ["s".to_owned()];
        let s = f.get("s").unwrap();
        s.apply(b"a", Change::State(0));
        h.observe(1000, &f, &m, &[]);
        h.observe(1500, &f, &m, &[]);
        s.apply(b"a", Change::State(1));
        h.observe(2000, &f, &m, &[]);
        let p = h.past("s", b"a", 3000, 2500);
        assert_eq!(p.since, Some(2000));
        assert_eq!(
            p.timeline,
            vec![
                Segment {
                    from: 500,
                    to: 1000,
                    state: None
                },
                Segment {
                    from: 1000,
                    to: 2000,
                    state: Some("up".into())
                },
                Segment {
                    from: 2000,
                    to: 3000,
                    state: Some("down".into())
                },
            ]
        );
        assert_eq!(p.day.covered_seconds, 2000);
        let fractions: Vec<(&str, f64)> = p
            .day
            .states
            .iter()
            .map(|s| (s.state.as_str(), s.fraction))
            .collect();
        assert_eq!(fractions, [("up", 0.5), ("down", 0.5)]);
        // Gone, then back in the same state: `since` goes across the gap.
        s.remove(b"a");
        h.observe(3000, &f, &m, &[]);
        assert_eq!(h.past("s", b"a", 3100, 100).since, None);
        s.apply(b"a", Change::State(1));
        h.observe(3200, &f, &m, &[]);
        let p = h.past("s", b"a", 3300, 400);
        assert_eq!(p.since, Some(2000));
        assert_eq!(
            p.timeline[1],
            Segment {
                from: 3000,
                to: 3200,
                state: None
            }
        );
    }

    #[test]
    fn changes_are_bounded_per_component() {
        let f = families();
        let h = History::default();
        let m = ["s".to_owned()];
        let s = f.get("s").unwrap();
        for i in 0..(MAX_CHANGES as u64 * 3) {
            s.apply(b"a", Change::State((i % 2) as usize));
            h.observe(10_000 + i, &f, &m, &[]);
        }
        let inner = h.inner.lock().unwrap();
        assert_eq!(inner.tracks["s"][&b"a"[..]].changes.len(), MAX_CHANGES);
    }

    #[test]
    fn saved_history_comes_back_with_the_downtime_as_a_gap() {
        let dir = tempfile::tempdir().unwrap();
        let f = families();
        let h = History::default();
        let m = ["s".to_owned()];
        f.get("s").unwrap().apply(b"a", Change::State(1));
        h.observe(1000, &f, &m, &[]);
        h.save(dir.path(), 1100).unwrap();
        let back = History::load(dir.path()).unwrap();
        assert_eq!(back.len(), 1);
        // Not seen yet after the restart: absent since the save, but `since` survives.
        back.observe(1200, &families(), &m, &[]);
        let p = back.past("s", b"a", 1300, 400);
        assert_eq!(p.since, None);
        back.observe(1300, &f, &m, &[]);
        let p = back.past("s", b"a", 1400, 500);
        assert_eq!(p.since, Some(1000));
        assert_eq!(
            p.timeline[2],
            Segment {
                from: 1100,
                to: 1300,
                state: None
            }
        );
        // Only regular files are read.
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join(FILE_NAME)).unwrap();
        assert!(History::load(other.path()).is_err());
    }
}
