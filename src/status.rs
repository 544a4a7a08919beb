//! What the landing page shows about each source: a snapshot its thread refreshes.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The state of one file a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    /// Matched by a glob and followed.
    Following,
    /// Renamed away or deleted; read until it stays quiet for `rotate_wait`.
    Draining,
    /// Followed without holding its descriptor (over the open-file budget).
    InTurns,
    /// A copy of another followed file: read only once the original is truncated or gone.
    Copy,
    /// Under a directory that could not be listed: kept as it was, not taken for gone.
    Unseen,
}

impl FileState {
    /// How the landing page names the state.
    pub fn as_str(self) -> &'static str {
        match self {
            FileState::Following => "following",
            FileState::Draining => "draining (rotated or deleted)",
            FileState::InTurns => "following, in turns (over the open-file budget)",
            FileState::Copy => "a copy (read from its original while that is intact)",
            FileState::Unseen => "unseen (its directory cannot be listed)",
        }
    }
}

/// One file, as last seen.
#[derive(Debug, Clone)]
pub struct FileStatus {
    /// The path as text (shared with the tailer's: made once per name, not once a second).
    pub path: std::sync::Arc<str>,
    pub state: FileState,
    pub offset: u64,
    pub size: u64,
    pub lines: u64,
    pub bytes: u64,
    pub last_error: Option<String>,
}

/// The last fetch of a page source.
#[derive(Debug, Clone)]
pub struct FetchStatus {
    pub at: SystemTime,
    pub ok: bool,
    /// How the document came: `HTTP 200`, `exit 0`, `512 bytes`.
    pub detail: String,
    /// The document's size, when one came.
    pub bytes: Option<usize>,
    /// An HTTP response's Content-Type.
    pub content_type: Option<String>,
    pub duration: std::time::Duration,
    pub error: Option<String>,
    pub matches: u64,
}

/// One source, as last seen.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    pub name: String,
    /// `file`, `http`, `command`, `status_file` or `socket`.
    pub kind: &'static str,
    /// Whether it reads log records line by line (a file source: files, no fetch) rather
    /// than fetched documents ([`crate::config::SourceKind::reads_lines`]).
    pub reads_lines: bool,
    /// What the source reads (its globs).
    pub targets: Vec<String>,
    /// Which change notifications are on ([`crate::config::WatchMode::Off`]: polling only).
    pub notifications: crate::config::WatchMode,
    pub files: Vec<FileStatus>,
    /// Matches and errors per rule.
    pub rules: Vec<crate::pipeline::RuleStats>,
    /// Records no rule matched.
    pub unmatched: u64,
    /// The latest of them (bounded; lines of file sources), oldest first.
    pub unmatched_samples: Vec<String>,
    /// The latest problem of the source itself (not of one file).
    pub last_error: Option<String>,
    /// What else the operator should know: directories that cannot be listed, matched paths
    /// that are not read and why, files read in turns.
    pub notes: Vec<String>,
    pub updated: Option<SystemTime>,
    /// Page sources: the last fetch.
    pub fetch: Option<FetchStatus>,
}

/// A status shared between a source thread (writer) and the web server (reader).
pub type SharedStatus = Arc<Mutex<SourceStatus>>;
