//! What a checkpoint says is checked before anything of it is used: a file whose checksum
//! holds can still say what cannot be right (edited by hand with the checksum made again, or
//! written by a broken build), and what is restored is served, and saved again, for good.
//!
//! Values must be what the exposition and the metric's type allow: counters finite and not
//! negative, histogram buckets counts whose total is the count, a state one of the declared
//! states (or `unknown`); keys must be label values of the family's labels, valid UTF-8,
//! within the value length cap, each once. File records must agree with the files they name:
//! a file that is still the same file (same inode and birth, same first bytes) must hold, just
//! before the offset recorded, the bytes read there; and the offset must end a line. One
//! problem is enough to refuse the whole checkpoint: counts and offsets were saved together,
//! and one without the other would count lines again or lose them.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use crate::config::MetricKind;
use crate::registry::Family;
use crate::series::split_key;
use crate::source::fs::Fs;
use crate::source::identity;
use crate::source::tailer::SavedPhase;

use super::Snapshot;

/// Most problems listed in a refusal.
const SHOWN: usize = 5;

/// The problems of a checkpoint's values against the families they would go into (families
/// that changed since are dropped anyway, and not checked).
pub fn values(snapshot: &Snapshot, families: &[Arc<Family>]) -> Vec<String> {
    let mut problems = Vec::new();
    for saved in &snapshot.families {
        let Some(family) = families.iter().find(|f| f.name == saved.name) else {
            continue;
        };
        if !saved.fits(family) {
            continue;
        }
        let labels = saved.labels.len();
        let cap = family.max_label_value_length();
        let mut keys = HashSet::new();
        for i in 0..saved.series.len() {
            let key = saved.series.key(i);
            let shown = String::from_utf8_lossy(key).replace('\u{ff}', ",");
            let parts: Vec<&[u8]> = if labels == 0 {
                if !key.is_empty() {
                    problems.push(format!(
                        "{}: a series key {shown:?} for a metric without labels",
                        saved.name
                    ));
                }
                Vec::new()
            } else {
                split_key(key, labels).collect()
            };
            if labels > 0 && key.split(|b| *b == 0xff).count() != labels {
                problems.push(format!(
                    "{}: a series key {shown:?} with {} label values, not {labels}",
                    saved.name,
                    key.split(|b| *b == 0xff).count()
                ));
                continue;
            }
            for part in &parts {
                match std::str::from_utf8(part) {
                    Err(_) => problems.push(format!(
                        "{}: a label value that is not UTF-8 ({shown:?})",
                        saved.name
                    )),
                    Ok(v) if v.len() > cap => problems.push(format!(
                        "{}: a label value of {} bytes, over the cap of {cap}",
                        saved.name,
                        v.len()
                    )),
                    Ok(_) => {}
                }
            }
            if !keys.insert(key) {
                problems.push(format!(
                    "{}: the series {shown:?} twice (it would be served twice)",
                    saved.name
                ));
            }
            if let Some(p) = value_problem(
                saved.kind,
                &saved.buckets,
                &saved.states,
                saved.series.values(i),
            ) {
                problems.push(format!("{}{{{shown}}}: {p}", saved.name));
            }
        }
    }
    problems
}

/// What is wrong with one series' values for its type, if anything.
fn value_problem(
    kind: MetricKind,
    buckets: &[f64],
    states: &[String],
    v: &[f64],
) -> Option<String> {
    match kind {
        MetricKind::Counter => {
            let c = v[0];
            (!c.is_finite() || c < 0.0).then(|| format!("a counter of {c}"))
        }
        // Any number is a gauge's value (NaN and infinities included).
        MetricKind::Gauge => None,
        MetricKind::State => {
            let level = v[0];
            (level.fract() != 0.0 || !(0.0..=states.len() as f64).contains(&level)).then(|| {
                format!(
                    "state level {level}, not one of the {} states or unknown",
                    states.len()
                )
            })
        }
        MetricKind::Histogram => {
            let n = buckets.len();
            if v.len() != n + 3 {
                return Some(format!("{} histogram values, not {}", v.len(), n + 3));
            }
            let counts = &v[..=n];
            if let Some(c) = counts
                .iter()
                .find(|c| !c.is_finite() || **c < 0.0 || c.fract() != 0.0)
            {
                return Some(format!("a bucket count of {c}"));
            }
            let total: f64 = counts.iter().sum();
            let count = v[n + 2];
            (total != count)
                .then(|| format!("buckets that hold {total} observations, a count of {count}"))
        }
    }
}

/// The problems of a checkpoint's file records against the files as they are now: a file that
/// is still the one recorded (same identity, same first bytes) but does not hold, before the
/// offset, what was read there — or where the offset does not end a line, or is past the end of
/// a file unchanged since the checkpoint, or of any file.
pub fn files<F: Fs>(snapshot: &Snapshot, fs: &F) -> Vec<String> {
    let mut problems = Vec::new();
    for (source, state) in &snapshot.sources {
        for r in &state.files {
            let k = &r.known;
            // Followed or draining (a shadow's offset is where it was found equal), read
            // somewhat. Without birth times (some filesystems keep none) an inode number may
            // name another file by now: the same first bytes tell it is the same file.
            if r.phase == SavedPhase::Shadow
                || k.offset == 0
                || k.head.len == 0
                || k.marker.len == 0
            {
                continue;
            }
            // No file is longer than `i64::MAX` bytes (`off_t`): such an offset is a negative
            // one written unsigned, or garbage, whatever the file is now.
            if k.offset > i64::MAX as u64 {
                problems.push(format!(
                    "source {source}: offset {} of {} is past the end of any file",
                    k.offset, k.path
                ));
                continue;
            }
            let Ok(meta) = fs.stat(Path::new(&k.path)) else {
                continue;
            };
            if meta.id != k.id || !meta.is_file {
                continue;
            }
            let Ok(h) = fs.open(Path::new(&k.path)) else {
                continue;
            };
            if !identity::starts_with(&h, meta.size, &k.head).unwrap_or(false) {
                // Its beginning changed: new content (truncated and written again while the
                // exporter was down); the tailer reads it as such.
                continue;
            }
            if meta.size < k.offset {
                // Shorter than what was read: truncated and written again (with the same
                // first bytes) while the exporter was down — unless it has not changed since
                // the checkpoint was taken (its ctime, which every write and truncation moves
                // and `touch` cannot set back, is older): then the offset was never read there,
                // and the tailer would take the file for another and read it again from 0, on
                // top of the counts restored.
                if meta.changed < snapshot.taken_at_ms.saturating_mul(1_000_000) {
                    problems.push(format!(
                        "source {source}: offset {} of {} is past its end ({} bytes), and the file has not changed since the checkpoint was taken",
                        k.offset, k.path, meta.size
                    ));
                }
                continue;
            }
            if identity::marker(&h, k.offset).is_ok_and(|m| m != k.marker) {
                problems.push(format!(
                    "source {source}: {} is the file recorded, but the bytes before offset {} are not those read there",
                    k.path, k.offset
                ));
                continue;
            }
            let before = identity::read_range(&h, k.offset - 1, 1).unwrap_or_default();
            if !r.skipping && before.first() != Some(&b'\n') {
                problems.push(format!(
                    "source {source}: offset {} of {} does not end a line",
                    k.offset, k.path
                ));
            }
        }
    }
    problems
}

/// The refusal message: the first problems, and how many there are.
pub fn summary(problems: &[String]) -> String {
    let mut out = problems
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if problems.len() > SHOWN {
        out.push_str(&format!("; and {} more", problems.len() - SHOWN));
    }
    out
}
