//! The checkpoint file's format: a versioned, checksummed encoding of a [`Snapshot`].
//!
//! `QRYCKPT\0`, the version (u32), the payload's length (u64) and its SHA-256, then the
//! payload: the families (name, type, labels, buckets, states, series) and the sources' file
//! records. Version 2 adds to each file record its first bytes, whether it was truncated and
//! its replay (which lines after its offset were counted); version 1 is still read. Decoding
//! never panics and never allocates more than the file's size allows: a count is checked
//! against the bytes left before anything is made of it.

use crate::config::{FileFormat, MetricKind};
use crate::registry::FamilySnapshot;
use crate::series::TableCopy;
use crate::source::fs::FileId;
use crate::source::identity::{Digest, Known, HEAD_LEN};
use crate::source::records::Replay;
use crate::source::tailer::{FileRecord, SavedPhase, TailState};

use super::Snapshot;

const MAGIC: &[u8; 8] = b"QRYCKPT\0";
/// The format written. Version 1 (before file records carried their replay) is still read.
const VERSION: u32 = 2;

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
                if first.len() as u64 > HEAD_LEN {
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
    fn phase(&mut self) -> Result<SavedPhase, DecodeError> {
        let code = self.u8()?;
        SavedPhase::from_code(code).ok_or_else(|| DecodeError(format!("unknown file phase {code}")))
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
            w.u8(r.phase.code());
            w.id(r.of);
            w.u8(u8::from(r.skipping));
        }
        w.u32(state.gone.len() as u32);
        for k in &state.gone {
            w.known(k);
        }
    }
    frame(&w.0)
}

/// A checkpoint file around `payload`: magic, version, length and checksum before it (what
/// [`decode`] checks before it reads the payload; the fuzz target frames arbitrary payloads).
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let sha = Digest::of(payload).sha;
    let mut out = Vec::with_capacity(payload.len() + 52);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&sha);
    out.extend_from_slice(payload);
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
                phase: r.phase()?,
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
                        phase: SavedPhase::Shadow,
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

    /// A file record's phase is the byte checkpoints have always held for it; a byte no
    /// version wrote (under a valid checksum) is refused like any corrupt checkpoint.
    #[test]
    fn file_phases_read_back_and_an_unknown_one_is_an_error() {
        let with_phase = |phase| {
            let mut s = sample();
            s.sources[0].1.files[0].phase = phase;
            s
        };
        for phase in [
            SavedPhase::Following,
            SavedPhase::Draining,
            SavedPhase::Shadow,
        ] {
            let back = decode(&encode(&with_phase(phase))).unwrap();
            assert_eq!(back.sources[0].1.files[0].phase, phase);
        }
        // The one payload byte where a shadow's record and a draining one's differ.
        let shadow = encode(&with_phase(SavedPhase::Shadow));
        let draining = encode(&with_phase(SavedPhase::Draining));
        let differing: Vec<usize> = (52..shadow.len())
            .filter(|&i| shadow[i] != draining[i])
            .collect();
        assert_eq!(differing.len(), 1);
        let at = differing[0];
        assert_eq!((shadow[at], draining[at]), (2, 1));
        let mut payload = shadow[52..].to_vec();
        payload[at - 52] = 3;
        let error = decode(&frame(&payload)).unwrap_err();
        assert!(error.0.contains("unknown file phase 3"), "{error}");
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
}
