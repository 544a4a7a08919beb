//! Routine file events as a periodic summary, not a log line each.
//!
//! Under a busy `RotatingFileHandler` a source sees hundreds of rotations a minute; a line per
//! renamed file buried everything else (4,075 of 4,169 log lines in 30 s). The events that are
//! the tailer doing its job (a file new, rotated, renamed, drained and closed, a copy
//! recognised or shadowed, a shadow read on, a compressed file skipped) are logged at debug,
//! each, and counted here; at most once per [`SUMMARY_EVERY`] per source one info line says
//! how many of each there were, so an operator still sees the activity. Events that may have
//! cost data or need a look (a file lost, replaced while draining, truncated, resumed after a
//! restart) are not routine: they keep their own line at info or warn. Every event is also
//! counted in `quarry_source_file_events_total{event}`, whatever its level.

use std::time::{Duration, Instant};

use super::tailer::EventKind;

/// Least time between two summaries of one source.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// Whether `kind` is routine: logged at debug and summarised, not logged at info each.
pub fn is_routine(kind: EventKind) -> bool {
    match kind {
        EventKind::New
        | EventKind::Rotated
        | EventKind::Renamed
        | EventKind::Recognised
        | EventKind::Shadowed
        | EventKind::TailRecovered
        | EventKind::Draining
        | EventKind::Closed
        | EventKind::SkippedCompressed => true,
        EventKind::Resumed
        | EventKind::Truncated
        | EventKind::ReplacedWhileDraining
        | EventKind::Lost => false,
    }
}

/// The routine events of one source since its last summary.
#[derive(Debug, Default)]
pub struct Activity {
    /// When the first event not yet summarised came (`None`: none pending).
    since: Option<Instant>,
    /// Per kind, in [`EventKind::ALL`] order.
    counts: [u64; EventKind::ALL.len()],
}

impl Activity {
    /// Counts a routine event seen at `now`.
    pub fn note(&mut self, kind: EventKind, now: Instant) {
        if let Some(i) = EventKind::ALL.iter().position(|k| *k == kind) {
            self.counts[i] += 1;
            self.since.get_or_insert(now);
        }
    }

    /// The summary to log at `now`, if [`SUMMARY_EVERY`] has passed since its first event;
    /// what it says is then forgotten.
    pub fn due(&mut self, now: Instant) -> Option<String> {
        let since = self.since?;
        if now.saturating_duration_since(since) < SUMMARY_EVERY {
            return None;
        }
        self.take(now)
    }

    /// The summary of whatever is pending, due or not (a source stopping says what it saw).
    pub fn take(&mut self, now: Instant) -> Option<String> {
        let since = self.since.take()?;
        let parts: Vec<String> = EventKind::ALL
            .iter()
            .zip(&self.counts)
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{n} {}", k.as_str()))
            .collect();
        self.counts = Default::default();
        let secs = now.saturating_duration_since(since).as_secs().max(1);
        Some(format!(
            "file events in the last {secs}s: {} (each at debug; quarry_source_file_events_total counts them)",
            parts.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst of rotations makes one summary a minute, with the counts; nothing before.
    #[test]
    fn a_burst_is_summarised_once_a_minute() {
        let start = Instant::now();
        let mut a = Activity::default();
        assert_eq!(a.due(start), None);
        for i in 0..4000u64 {
            let now = start + Duration::from_millis(i * 10);
            a.note(EventKind::Renamed, now);
            if i % 2 == 0 {
                a.note(EventKind::New, now);
            }
            assert_eq!(a.due(now), None, "{i}");
        }
        let text = a.due(start + SUMMARY_EVERY).unwrap();
        assert_eq!(
            text,
            "file events in the last 60s: 2000 new, 4000 renamed (each at debug; \
             quarry_source_file_events_total counts them)"
        );
        assert_eq!(a.due(start + SUMMARY_EVERY * 3), None);
        a.note(EventKind::Draining, start + SUMMARY_EVERY * 3);
        let stop = start + SUMMARY_EVERY * 3 + Duration::from_secs(5);
        assert_eq!(a.due(stop), None);
        assert!(a.take(stop).unwrap().contains("last 5s: 1 draining"));
        assert_eq!(a.take(stop), None);
    }

    #[test]
    fn losses_and_truncations_are_not_routine() {
        for kind in [
            EventKind::Lost,
            EventKind::ReplacedWhileDraining,
            EventKind::Truncated,
            EventKind::Resumed,
        ] {
            assert!(!is_routine(kind), "{kind:?}");
        }
        assert!(is_routine(EventKind::Rotated));
    }
}
