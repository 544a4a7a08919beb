//! Checkpoints: the offsets of every followed file and the values of every metric family fed
//! by file sources, saved together, so that a restart neither loses nor counts twice.
//!
//! **Consistency.** Every change of counts and offsets happens inside a *section* of the
//! [`Gate`] (a read lock, taken by file sources per chunk of lines and by page sources per
//! document). A checkpoint pauses the gate (the write lock: no section runs), copies the
//! families' series and the records the sources published in their sections, and resumes.
//! So the offsets saved are exactly the ends of the lines the values saved have counted.
//!
//! **When.** Before every `/metrics` render (and that render shows the very values saved, so
//! Prometheus never sees a value higher than the disk holds: after a restart no counter goes
//! back), every `--storage.interval`, and at shutdown.
//!
//! **How.** One file, `quarry.checkpoint`: written to a temporary file, `fsync`ed, renamed over
//! the old one, and the directory `fsync`ed; a reader sees the old checkpoint or the new one,
//! never a mix, even after a power loss. The format is versioned and checksummed (SHA-256);
//! a truncated, corrupt or foreign file is moved aside and the exporter starts without it.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{FileFormat, MetricKind};
use crate::registry::Family;
use crate::series::TableCopy;
use crate::source::fs::FileId;
use crate::source::identity::{Digest, Known};
use crate::source::records::Replay;
use crate::source::tailer::{FileRecord, TailState};

/// The file a storage directory holds.
pub const FILE_NAME: &str = "quarry.checkpoint";
const MAGIC: &[u8; 8] = b"QRYCKPT\0";
/// The format written. Version 1 (before file records carried their replay) is still read.
const VERSION: u32 = 2;
/// How long a checkpoint waits for the sources' sections to end before giving up (a source
/// stuck on a hung filesystem must not stall `/metrics`).
const PAUSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The lock every change of counts and offsets holds for reading (a *section*), and a
/// checkpoint for writing.
#[derive(Default)]
pub struct Gate {
    lock: parking_lot::RwLock<()>,
    /// The checkpointer, once there is one (with `--storage.path`): sources ask it for a
    /// checkpoint before reading a new file (see [`crate::source::tailer::Sink::durable`]).
    checkpointer: std::sync::OnceLock<std::sync::Weak<Checkpointer>>,
}

impl Gate {
    /// Registers the checkpointer sources may ask for checkpoints.
    pub fn set_checkpointer(&self, checkpointer: &Arc<Checkpointer>) {
        let _ = self.checkpointer.set(Arc::downgrade(checkpointer));
    }

    /// The checkpointer, if checkpoints are on.
    pub fn checkpointer(&self) -> Option<Arc<Checkpointer>> {
        self.checkpointer.get().and_then(std::sync::Weak::upgrade)
    }

    /// A section: counts and offsets may change while it is held.
    pub fn section(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.lock.read()
    }

    /// No section runs while this is held; `None` if sections did not end within `timeout`.
    pub fn pause(&self, timeout: Duration) -> Option<parking_lot::RwLockWriteGuard<'_, ()>> {
        self.lock.try_write_for(timeout)
    }
}

/// The records one file source publishes in its sections, for checkpoints to read.
#[derive(Default)]
pub struct SourceShare {
    inner: Mutex<ShareInner>,
}

#[derive(Default)]
struct ShareInner {
    records: BTreeMap<FileId, FileRecord>,
    gone: Vec<Known>,
    restored: Vec<FileRecord>,
}

impl SourceShare {
    fn inner(&self) -> std::sync::MutexGuard<'_, ShareInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A file's record changed (`None`: no longer followed).
    pub fn record(&self, id: FileId, record: Option<&FileRecord>) {
        let mut inner = self.inner();
        match record {
            Some(r) => {
                inner.records.insert(id, r.clone());
            }
            None => {
                inner.records.remove(&id);
            }
        }
    }

    /// The remembered gone content and the unmatched checkpoint records changed.
    pub fn remembered(&self, gone: &[Known], restored: &[FileRecord]) {
        let mut inner = self.inner();
        inner.gone = gone.to_vec();
        inner.restored = restored.to_vec();
    }

    /// Starts from a restored state (nothing followed yet: all of it is unmatched).
    pub fn reset(&self, state: &TailState) {
        let mut inner = self.inner();
        inner.records.clear();
        inner.gone = state.gone.clone();
        inner.restored = state.files.clone();
    }

    /// The state as published (a file followed now wins over an unmatched record of it).
    pub fn state(&self) -> TailState {
        let inner = self.inner();
        let mut files: Vec<FileRecord> = inner.records.values().cloned().collect();
        files.extend(
            inner
                .restored
                .iter()
                .filter(|r| !inner.records.contains_key(&r.known.id))
                .cloned(),
        );
        TailState {
            files,
            gone: inner.gone.clone(),
        }
    }
}

/// One family's series as saved.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    pub name: String,
    pub kind: MetricKind,
    /// Label names in key order.
    pub labels: Vec<String>,
    pub buckets: Vec<f64>,
    pub states: Vec<String>,
    pub series: TableCopy,
}

/// Everything a checkpoint holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// When it was taken (Unix milliseconds).
    pub taken_at_ms: u64,
    pub families: Vec<FamilySnapshot>,
    pub sources: Vec<(String, TailState)>,
}

impl FamilySnapshot {
    /// A family's series now (its declaration with them).
    pub fn of(family: &Family) -> FamilySnapshot {
        FamilySnapshot {
            name: family.name.clone(),
            kind: family.kind,
            labels: family.key_labels().to_vec(),
            buckets: family.buckets().to_vec(),
            states: family.state_names().to_vec(),
            series: family.copy(),
        }
    }

    /// Whether these series fit `family` (same type, labels, buckets, states).
    pub fn fits(&self, family: &Family) -> bool {
        self.name == family.name
            && self.kind == family.kind
            && self.labels == family.key_labels()
            && self.buckets == family.buckets()
            && self.states == family.state_names()
            && self.series.width() == family.width()
    }
}

// ---- encoding -------------------------------------------------------------------------------

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.u64(v.to_bits());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn digest(&mut self, d: &Digest) {
        self.u32(d.len);
        self.0.extend_from_slice(&d.sha);
    }
    fn id(&mut self, id: FileId) {
        self.u64(id.dev);
        self.u64(id.ino);
        self.u64(id.birth);
    }
    fn known(&mut self, k: &Known) {
        self.str(&k.path);
        self.id(k.id);
        self.digest(&k.head);
        self.u64(k.offset);
        self.digest(&k.marker);
        self.bytes(&k.first);
        self.u8(u8::from(k.truncated));
        match &k.replay {
            None => self.u8(0),
            Some(r) => {
                self.u8(1);
                self.u64(r.until);
                self.u8(format_code(r.format));
                self.u32(r.held.len() as u32);
                for (stream, first) in &r.held {
                    self.str(stream);
                    self.u64(*first);
                }
            }
        }
    }
}

/// Why a checkpoint could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    version: u32,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or_else(|| DecodeError(format!("truncated at byte {}", self.at)))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64()?))
    }
    /// A count of items that each take at least `min_size` bytes: bounded by what is left, so
    /// a corrupt count cannot make the decoder allocate without bound.
    fn count(&mut self, min_size: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size.max(1)) > self.data.len() - self.at {
            return Err(DecodeError(format!(
                "count {n} at byte {} exceeds the file",
                self.at - 4
            )));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| DecodeError(format!("text that is not UTF-8 before byte {}", self.at)))
    }
    fn digest(&mut self) -> Result<Digest, DecodeError> {
        let len = self.u32()?;
        let mut sha = [0u8; 32];
        sha.copy_from_slice(self.take(32)?);
        Ok(Digest { len, sha })
    }
    fn id(&mut self) -> Result<FileId, DecodeError> {
        Ok(FileId {
            dev: self.u64()?,
            ino: self.u64()?,
            birth: self.u64()?,
        })
    }
    fn known(&mut self) -> Result<Known, DecodeError> {
        Ok(Known {
            path: self.str()?,
            id: self.id()?,
            head: self.digest()?,
            offset: self.u64()?,
            marker: self.digest()?,
            first: if self.version < 2 {
                Vec::new()
            } else {
                let first = self.bytes()?;
                if first.len() as u64 > crate::source::identity::HEAD_LEN {
                    return Err(DecodeError(format!(
                        "a file's first bytes are {} long",
                        first.len()
                    )));
                }
                first.to_vec()
            },
            truncated: self.version >= 2 && self.u8()? != 0,
            replay: self.replay()?,
        })
    }
    fn replay(&mut self) -> Result<Option<Replay>, DecodeError> {
        if self.version < 2 {
            return Ok(None);
        }
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let until = self.u64()?;
                let format = match self.u8()? {
                    0 => FileFormat::Plain,
                    1 => FileFormat::Cri,
                    2 => FileFormat::Docker,
                    f => return Err(DecodeError(format!("unknown file format {f}"))),
                };
                let held = (0..self.count(12)?)
                    .map(|_| Ok((self.str()?, self.u64()?)))
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                Ok(Some(Replay {
                    until,
                    format,
                    held,
                }))
            }
            b => Err(DecodeError(format!("bad replay flag {b}"))),
        }
    }
}

fn format_code(f: FileFormat) -> u8 {
    match f {
        FileFormat::Plain => 0,
        FileFormat::Cri => 1,
        FileFormat::Docker => 2,
    }
}

fn kind_code(k: MetricKind) -> u8 {
    match k {
        MetricKind::Counter => 0,
        MetricKind::Gauge => 1,
        MetricKind::Histogram => 2,
        MetricKind::State => 3,
    }
}

/// The bytes of a checkpoint file.
pub fn encode(s: &Snapshot) -> Vec<u8> {
    let mut w = Writer(Vec::with_capacity(4096));
    w.u64(s.taken_at_ms);
    w.u32(s.families.len() as u32);
    for f in &s.families {
        w.str(&f.name);
        w.u8(kind_code(f.kind));
        w.u32(f.labels.len() as u32);
        for l in &f.labels {
            w.str(l);
        }
        w.u32(f.buckets.len() as u32);
        for b in &f.buckets {
            w.f64(*b);
        }
        w.u32(f.states.len() as u32);
        for st in &f.states {
            w.str(st);
        }
        w.u32(f.series.width() as u32);
        w.u32(f.series.len() as u32);
        for i in 0..f.series.len() {
            w.bytes(f.series.key(i));
            for v in f.series.values(i) {
                w.f64(*v);
            }
        }
    }
    w.u32(s.sources.len() as u32);
    for (name, state) in &s.sources {
        w.str(name);
        w.u32(state.files.len() as u32);
        for r in &state.files {
            w.known(&r.known);
            w.u8(r.phase);
            w.id(r.of);
            w.u8(u8::from(r.skipping));
        }
        w.u32(state.gone.len() as u32);
        for k in &state.gone {
            w.known(k);
        }
    }
    let payload = w.0;
    let sha = Digest::of(&payload).sha;
    let mut out = Vec::with_capacity(payload.len() + 52);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&sha);
    out.extend_from_slice(&payload);
    out
}

/// Reads a checkpoint file's bytes; any inconsistency is an error, never a panic.
pub fn decode(data: &[u8]) -> Result<Snapshot, DecodeError> {
    if data.len() < 52 || &data[..8] != MAGIC {
        return Err(DecodeError(
            "not a quarry_exporter checkpoint (wrong magic bytes)".into(),
        ));
    }
    let version = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes"));
    if !(1..=VERSION).contains(&version) {
        return Err(DecodeError(format!(
            "checkpoint format version {version}; this exporter reads version {VERSION}"
        )));
    }
    let len = u64::from_le_bytes(data[12..20].try_into().expect("8 bytes"));
    let payload = &data[52..];
    if payload.len() as u64 != len {
        return Err(DecodeError(format!(
            "truncated: {} bytes of payload, the header says {len}",
            payload.len()
        )));
    }
    if Digest::of(payload).sha[..] != data[20..52] {
        return Err(DecodeError(
            "checksum mismatch (the file is corrupt)".into(),
        ));
    }
    let mut r = Reader {
        data: payload,
        at: 0,
        version,
    };
    let taken_at_ms = r.u64()?;
    let mut families = Vec::new();
    for _ in 0..r.count(16)? {
        let name = r.str()?;
        let kind = match r.u8()? {
            0 => MetricKind::Counter,
            1 => MetricKind::Gauge,
            2 => MetricKind::Histogram,
            3 => MetricKind::State,
            k => return Err(DecodeError(format!("unknown metric type {k} for {name:?}"))),
        };
        let labels = (0..r.count(4)?)
            .map(|_| r.str())
            .collect::<Result<Vec<_>, _>>()?;
        let buckets = (0..r.count(8)?)
            .map(|_| r.f64())
            .collect::<Result<Vec<_>, _>>()?;
        let states = (0..r.count(4)?)
            .map(|_| r.str())
            .collect::<Result<Vec<_>, _>>()?;
        let width = r.u32()? as usize;
        if width == 0 || width > 1 << 16 {
            return Err(DecodeError(format!("{name:?}: {width} values per series")));
        }
        let mut series = TableCopy::new(width);
        let mut values = Vec::with_capacity(width);
        for _ in 0..r.count(4 + width * 8)? {
            let key = r.bytes()?;
            values.clear();
            for _ in 0..width {
                values.push(r.f64()?);
            }
            series.push(key, &values);
        }
        families.push(FamilySnapshot {
            name,
            kind,
            labels,
            buckets,
            states,
            series,
        });
    }
    let mut sources = Vec::new();
    for _ in 0..r.count(4)? {
        let name = r.str()?;
        let mut files = Vec::new();
        for _ in 0..r.count(100)? {
            files.push(FileRecord {
                known: r.known()?,
                phase: r.u8()?,
                of: r.id()?,
                skipping: r.u8()? != 0,
            });
        }
        let gone = (0..r.count(100)?)
            .map(|_| r.known())
            .collect::<Result<Vec<_>, _>>()?;
        sources.push((name, TailState { files, gone }));
    }
    if r.at != payload.len() {
        return Err(DecodeError(format!(
            "{} bytes left over",
            payload.len() - r.at
        )));
    }
    Ok(Snapshot {
        taken_at_ms,
        families,
        sources,
    })
}

// ---- the storage directory ------------------------------------------------------------------

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
    _lock: std::fs::File,
}

impl Store {
    /// Opens (creating it if needed) and locks `dir`; an error says what to do.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        use std::os::unix::io::AsRawFd;
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!("--storage.path {}: cannot create it: {e}", dir.display())
        })?;
        let lock_path = dir.join(".lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| {
                anyhow::anyhow!(
                    "--storage.path {}: cannot write there ({e}); mount a writable volume",
                    dir.display()
                )
            })?;
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

    /// Reads the checkpoint; an unreadable one is moved aside (kept for inspection).
    pub fn load(&self) -> Loaded {
        let path = self.path();
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Loaded::Nothing,
            Err(e) => return self.aside(&path, format!("cannot read it: {e}")),
        };
        match decode(&data) {
            Ok(s) => Loaded::Snapshot(s),
            Err(e) => self.aside(&path, e.0),
        }
    }

    fn aside(&self, path: &Path, why: String) -> Loaded {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let moved = self.dir.join(format!("{FILE_NAME}.unreadable-{stamp}"));
        let _ = std::fs::rename(path, &moved);
        Loaded::Unreadable(why, moved)
    }

    /// Writes `bytes` as the checkpoint, atomically and durably.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{FILE_NAME}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.path())?;
        std::fs::File::open(&self.dir)?.sync_all()
    }
}

/// What a checkpoint copied: the series of the persisted families (rendered from these, so a
/// scrape shows exactly what was saved) and the snapshot itself.
pub struct Taken {
    pub snapshot: Snapshot,
}

/// The running checkpointer: what to copy, where to write.
pub struct Checkpointer {
    store: Store,
    gate: Arc<Gate>,
    current: Mutex<Current>,
    /// One write at a time, in the order taken.
    writing: Mutex<()>,
    metrics: crate::selfmetrics::CheckpointMetrics,
}

#[derive(Default)]
struct Current {
    sources: Vec<(String, Arc<SourceShare>)>,
    families: Vec<Arc<Family>>,
}

impl Checkpointer {
    /// A checkpointer writing to `store`, pausing `gate`.
    pub fn new(
        store: Store,
        gate: Arc<Gate>,
        metrics: crate::selfmetrics::CheckpointMetrics,
    ) -> Checkpointer {
        Checkpointer {
            store,
            gate,
            current: Mutex::new(Current::default()),
            writing: Mutex::new(()),
            metrics,
        }
    }

    /// What to save from now on (at start and after each reload): the file sources' shares and
    /// the families they feed.
    pub fn set(&self, sources: Vec<(String, Arc<SourceShare>)>, families: Vec<Arc<Family>>) {
        let mut c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        c.sources = sources;
        c.families = families;
    }

    /// The names of the families saved.
    pub fn persisted(&self) -> Vec<String> {
        let c = self.current.lock().unwrap_or_else(|e| e.into_inner());
        c.families.iter().map(|f| f.name.clone()).collect()
    }

    /// Copies everything at one point between sections; `None` if the sources did not pause
    /// in time (counted).
    pub fn take(&self) -> Option<Taken> {
        let current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pause) = self.gate.pause(PAUSE_TIMEOUT) else {
            self.metrics.errors.inc();
            tracing::warn!("checkpoint skipped: a source did not leave its section within {PAUSE_TIMEOUT:?} (stuck on a hung filesystem?)");
            return None;
        };
        let families = current
            .families
            .iter()
            .map(|f| FamilySnapshot::of(f))
            .collect();
        let sources = current
            .sources
            .iter()
            .map(|(name, share)| (name.clone(), share.state()))
            .collect();
        drop(pause);
        let taken_at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Some(Taken {
            snapshot: Snapshot {
                taken_at_ms,
                families,
                sources,
            },
        })
    }

    /// Saves what was taken. A failure is logged and counted; scrapes are still served.
    pub fn persist(&self, taken: &Taken) -> bool {
        let _one = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let started = std::time::Instant::now();
        let bytes = encode(&taken.snapshot);
        match self.store.write(&bytes) {
            Ok(()) => {
                self.metrics.writes.inc();
                self.metrics.bytes.set(bytes.len() as i64);
                self.metrics.duration.set(started.elapsed().as_secs_f64());
                self.metrics
                    .last_success
                    .set(taken.snapshot.taken_at_ms as f64 / 1000.0);
                true
            }
            Err(e) => {
                self.metrics.errors.inc();
                tracing::error!(
                    "cannot write the checkpoint to {}: {e}; a restart now would count lines since the last checkpoint again",
                    self.store.path().display()
                );
                false
            }
        }
    }

    /// Takes and saves a checkpoint.
    pub fn checkpoint(&self) -> bool {
        self.take().is_some_and(|t| self.persist(&t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut series = TableCopy::new(3);
        series.push(b"GET\xffok", &[1.0, 2.5, f64::NAN]);
        series.push(b"", &[0.0, -1.0, 1e300]);
        let digest = Digest::of(b"head");
        let known = Known {
            path: "/var/log/app.log".into(),
            id: FileId {
                dev: 2049,
                ino: 77,
                birth: 1,
            },
            head: digest,
            first: b"head".to_vec(),
            truncated: true,
            offset: 12345,
            marker: Digest::of(b"marker"),
            replay: Some(Replay {
                until: 20000,
                format: FileFormat::Cri,
                held: vec![("stdout".into(), 12345), ("stderr".into(), 15000)],
            }),
        };
        Snapshot {
            taken_at_ms: 1_790_000_000_000,
            families: vec![FamilySnapshot {
                name: "latency_seconds".into(),
                kind: MetricKind::Histogram,
                labels: vec!["method".into(), "status".into()],
                buckets: vec![0.5],
                states: vec![],
                series,
            }],
            sources: vec![(
                "web".into(),
                TailState {
                    files: vec![FileRecord {
                        known: known.clone(),
                        phase: 2,
                        of: FileId {
                            dev: 2049,
                            ino: 78,
                            birth: 2,
                        },
                        skipping: true,
                    }],
                    gone: vec![known],
                },
            )],
        }
    }

    #[test]
    fn a_snapshot_reads_back_bit_for_bit() {
        let s = sample();
        let bytes = encode(&s);
        let back = decode(&bytes).unwrap();
        // NaN is not equal to itself: compare the encodings.
        assert_eq!(encode(&back), bytes);
        assert_eq!(back.sources, s.sources);
    }

    /// Every truncation and every single-byte change is an error, never a panic or a wrong
    /// state.
    #[test]
    fn corrupt_truncated_and_foreign_files_are_errors() {
        let bytes = encode(&sample());
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err(), "truncated to {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode(&b).is_err(), "byte {i} changed");
        }
        assert!(decode(b"# HELP some text file\n")
            .unwrap_err()
            .0
            .contains("magic"));
        let mut future = bytes.clone();
        future[8] = 3;
        assert!(decode(&future).unwrap_err().0.contains("version 3"));
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
        store.write(&encode(&sample())).unwrap();
        assert!(matches!(store.load(), Loaded::Snapshot(s) if s.sources == sample().sources));
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
}
