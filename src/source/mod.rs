//! Sources: where records come from. Each source runs on its own thread, owns its
//! [`crate::pipeline::Pipeline`], and is woken by notifications, a poll tick or a stop.
//!
//! The set of kinds is closed: files (lines, on a thread each) and page sources (documents from
//! HTTP, commands and status files, on tasks of the exporter's runtime).

pub mod discover;
pub mod fetch;
pub mod file;
pub mod lines;
pub mod page;
pub mod reaper;
pub mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

pub use discover::Wake;
pub use file::FileSource;
pub use page::PageSource;

/// A source thread that is running.
pub struct RunningSource {
    name: String,
    wake: Sender<Wake>,
    thread: JoinHandle<FileSource>,
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
        let thread = std::thread::Builder::new()
            .name(format!("source-{name}"))
            .spawn(move || {
                source.run(tx, rx, move || {
                    pending.fetch_sub(1, Ordering::SeqCst);
                })
            })?;
        Ok(RunningSource {
            name: name.to_owned(),
            wake,
            thread,
        })
    }

    /// Asks the thread to stop, waits for it, and returns the source with the files it was
    /// reading (`None` if the thread panicked).
    pub fn stop(self) -> Option<FileSource> {
        let _ = self.wake.send(Wake::Stop);
        match self.thread.join() {
            Ok(source) => Some(source),
            Err(_) => {
                tracing::error!(source = %self.name, "source thread panicked");
                None
            }
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}
