//! The checkpoint gate: every change of counts and offsets happens in a *section* (the gate
//! held for reading, by file sources per chunk of lines and by page sources per document); a
//! checkpoint pauses the gate (held for writing: no section runs) while it copies, so the
//! offsets it saves are exactly the ends of the lines the values it saves have counted.
//!
//! It depends on nothing else in the crate: sources and `explain` take sections, the
//! checkpointer pauses it and registers itself as the [`CheckpointRequests`] that sources ask
//! for a checkpoint before reading a new file.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// What sources may ask of the checkpointer through the gate.
pub trait CheckpointRequests: Send + Sync {
    /// Asks for a checkpoint now and waits for it within `wait`; returns whether one was
    /// written (or nothing had changed).
    fn checkpoint_within(&self, wait: Duration) -> bool;
}

/// The lock every change of counts and offsets holds for reading (a *section*), and a
/// checkpoint for writing; it counts sections, so a checkpoint knows whether anything changed.
#[derive(Default)]
pub struct Gate {
    lock: parking_lot::RwLock<()>,
    /// Sections begun (or changes marked): unchanged between two checkpoints means nothing
    /// changed.
    sections: AtomicU64,
    /// The checkpointer, once there is one (with `--storage.path`): sources ask it for a
    /// checkpoint before reading a new file (a restart then knows the file even if it is
    /// renamed away before the next checkpoint).
    checkpointer: OnceLock<Weak<dyn CheckpointRequests>>,
}

impl Gate {
    /// Registers the checkpointer sources may ask for checkpoints.
    pub fn set_checkpointer<C: CheckpointRequests + 'static>(&self, checkpointer: &Arc<C>) {
        let checkpointer: Weak<C> = Arc::downgrade(checkpointer);
        let _ = self.checkpointer.set(checkpointer);
    }

    /// The checkpointer, if checkpoints are on.
    pub fn checkpointer(&self) -> Option<Arc<dyn CheckpointRequests>> {
        self.checkpointer.get().and_then(Weak::upgrade)
    }

    /// A section: counts and offsets may change while it is held.
    pub fn section(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.sections.fetch_add(1, Ordering::SeqCst);
        self.lock.read()
    }

    /// A section that changes nothing unless [`Gate::mark_changed`] says so (the expiry of
    /// idle series, which mostly finds none).
    pub fn quiet_section(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.lock.read()
    }

    /// Something changed in a quiet section.
    pub fn mark_changed(&self) {
        self.sections.fetch_add(1, Ordering::SeqCst);
    }

    /// Sections begun so far (the checkpointer compares it with the count at its last
    /// checkpoint).
    pub fn sections(&self) -> u64 {
        self.sections.load(Ordering::SeqCst)
    }

    /// No section runs while this is held; `None` if sections did not end within `timeout`.
    pub fn pause(&self, timeout: Duration) -> Option<parking_lot::RwLockWriteGuard<'_, ()>> {
        self.lock.try_write_for(timeout)
    }
}
