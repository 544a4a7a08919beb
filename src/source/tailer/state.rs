//! What a source's files look like at a line boundary: what a checkpoint saves of a tailer.

use crate::source::identity::Known;

use super::record::FileRecord;

/// What a source's files look like at a line boundary: what a checkpoint saves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailState {
    pub files: Vec<FileRecord>,
    pub gone: Vec<Known>,
}
