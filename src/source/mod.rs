//! Sources: where records come from. Each source runs on its own thread, owns its
//! [`crate::pipeline::Pipeline`], and is woken by notifications, a poll tick or a stop.
//!
//! The set of kinds is closed: files (lines, on a thread each) and page sources (documents from
//! HTTP, commands and status files, on tasks of the exporter's runtime).

pub mod activity;
pub mod discover;
pub mod fetch;
pub mod file;
pub mod fs;
pub mod identity;
pub mod lines;
pub mod oauth2;
pub mod page;
pub mod reaper;
pub mod records;
#[cfg(test)]
mod sim;
pub mod socket;
pub mod tailer;
pub mod tls;
pub mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

pub use discover::Wake;
pub use file::FileSource;
pub use page::PageSource;

/// A source thread that is running.
pub struct RunningSource {
    name: String,
    wake: Sender<Wake>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// The source, handed back when the thread ends (dropped unsent if it panics).
    done: Receiver<FileSource>,
}

impl RunningSource {
    /// Starts `source` on its own thread; `pending` is decremented once its first scan is done.
    pub fn spawn(
        source: FileSource,
        name: &str,
        pending: Arc<AtomicUsize>,
    ) -> std::io::Result<RunningSource> {
        let (tx, rx) = mpsc::channel();
        let wake = tx.clone();
        let stop = source.stop_flag();
        let (done_tx, done) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("source-{name}"))
            .spawn(move || {
                let source = source.run(tx, rx, move || {
                    pending.fetch_sub(1, Ordering::SeqCst);
                });
                let _ = done_tx.send(source);
            })?;
        Ok(RunningSource {
            name: name.to_owned(),
            wake,
            stop,
            done,
        })
    }

    /// Asks the thread to stop and waits for it until `deadline`; returns the source with the
    /// files it was reading, or `None` if the thread panicked or is still stuck (in a read that
    /// does not return: a hung network filesystem). A stuck thread is left behind: reload and
    /// shutdown never wait longer than their deadlines.
    pub fn stop(self, deadline: std::time::Instant) -> Option<FileSource> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(Wake::Stop);
        let wait = deadline.saturating_duration_since(std::time::Instant::now());
        match self.done.recv_timeout(wait.max(Duration::from_millis(1))) {
            Ok(source) => Some(source),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                tracing::error!(source = %self.name, "source thread panicked");
                None
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                tracing::error!(source = %self.name, "source thread did not stop in time; leaving it behind");
                None
            }
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
