//! Where a followed file stands in the tailer: followed, draining, a shadow of another, or
//! pending a decision.

use std::time::Instant;

use crate::source::fs::FileId;

/// Where a followed file stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Matched by the globs and read as it grows.
    Following,
    /// No longer matched (renamed away, deleted): read to its end, then closed.
    Draining { since: Instant },
    /// A copy of a file that is still intact: not read (its lines come from the original)
    /// until the original is truncated, replaced or gone.
    Shadow { of: FileId },
    /// Too short yet to tell whether it is a copy of a followed file (a copy being written, or
    /// a new file whose first bytes look alike): held open, not read, decided once it grows,
    /// after `rotate_wait`, or when it leaves the globs (`free`).
    Pending { since: Instant, free: bool },
}
