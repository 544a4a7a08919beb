//! A followed file's state as a checkpoint keeps it: its content as known, and which of the
//! saved phases it was in.

use crate::source::fs::FileId;
use crate::source::identity::Known;

/// A file's state as a checkpoint keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub known: Known,
    pub phase: SavedPhase,
    /// For a shadow, the original.
    pub of: FileId,
    /// The line at `offset` is not to be counted (it started before the reader, or is over
    /// the length cap).
    pub skipping: bool,
}

/// The phase of a file as a checkpoint saves it (a pending file is saved as followed from its
/// start: nothing was read from it). The discriminants are the byte the checkpoint format
/// writes: they never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SavedPhase {
    /// Followed (or pending).
    Following = 0,
    /// No longer matched, read to its end.
    Draining = 1,
    /// A copy of [`FileRecord::of`], not read while that is intact.
    Shadow = 2,
}

impl SavedPhase {
    /// The byte the checkpoint format writes for this phase.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The phase a checkpoint's byte names; `None` for a byte no version ever wrote.
    pub fn from_code(code: u8) -> Option<SavedPhase> {
        match code {
            0 => Some(SavedPhase::Following),
            1 => Some(SavedPhase::Draining),
            2 => Some(SavedPhase::Shadow),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checkpoints already on disk hold these bytes.
    #[test]
    fn saved_phases_keep_their_bytes() {
        let phases = [
            (SavedPhase::Following, 0),
            (SavedPhase::Draining, 1),
            (SavedPhase::Shadow, 2),
        ];
        for (phase, code) in phases {
            assert_eq!(phase.code(), code);
            assert_eq!(SavedPhase::from_code(code), Some(phase));
        }
        for code in 3..=u8::MAX {
            assert_eq!(SavedPhase::from_code(code), None, "{code}");
        }
    }
}
