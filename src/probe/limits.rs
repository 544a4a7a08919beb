//! The capacity `/probe` requests share, and the rules that keep one target from taking it.
//!
//! Three bounds, each taken in this order and held until the probe's document is done with
//! (parsed, or abandoned by its probe and then finished by the worker):
//!
//! - **A slot of the target** (`--probe.max-per-target`): probes of one target (scheme, host
//!   and port of the URL it makes) beyond this wait for one of its own slots, holding nothing
//!   else. So a hanging or hostile target, however many probes Prometheus or anyone sends it,
//!   holds at most that many of the slots below; the others wait on it alone.
//! - **A slot over all targets** (`--probe.max-concurrent`): bounds fetches, sockets and
//!   parses in flight.
//! - **Room for the document** (`--probe.max-body-bytes-in-flight`): a body's bytes are taken
//!   from one budget as it arrives, all at once when the response gives its length. A probe
//!   waits for room only while it holds none (so two bodies can never each hold part and wait
//!   for the other); a body of unknown length that outgrows the room left fails at once.
//!
//! Parsing takes memory too, several times the document's (a 10 MB JSON document becomes some
//! 140 MB of `serde_json` values): documents of [`LARGE_DOCUMENT`] bytes or more are parsed
//! one at a time over all modules, so what parsing adds at once is one large document's
//! parse, however many arrive together.
//!
//! A probe that does not get one of them within its budget fails with the reason `no_slot`
//! and a message naming the bound, never `timeout`, which stays the target's. After a large
//! document is released, glibc is asked to return free memory to the system
//! (`malloc_trim`): its arenas otherwise keep the pages of every large body they served.
//!
//! The same `Limits` outlive a reload (the new modules take over the old ones' limits), so
//! the bounds hold across it. Each process also marks its own probe requests
//! ([`VIA_HEADER`]); a `/probe` request that carries its own mark came back through a target
//! (a redirect, a proxy) and is refused, so a loop cannot hold any slot for long.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::selfmetrics::{IntGauge, ProbeCapacityMetrics, SourceErrorReason};
use crate::source::fetch::{fail, BodyRoom, FetchError};

/// The header every outgoing probe request carries: the marks of the exporters whose probes
/// led to it, this one's last. Exporters chained on purpose (one probing another's
/// `/probe`) keep working; a request that comes back to an exporter already in its chain is a
/// loop.
pub const VIA_HEADER: &str = "x-quarry-probe-via";

/// How many exporters a chain of probes may pass before it is taken for a loop that does not
/// keep the header's marks intact.
pub const MAX_VIA: usize = 8;

/// Documents at least this large are parsed one at a time, and their release asks glibc to
/// give free memory back.
pub const LARGE_DOCUMENT: usize = 1 << 20;

/// The shared limits.
pub struct Limits {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    per_target: usize,
    targets: Arc<Mutex<HashMap<String, TargetEntry>>>,
    bodies: Arc<Semaphore>,
    body_budget: usize,
    large_parses: Arc<Semaphore>,
    mark: String,
    metrics: ProbeCapacityMetrics,
    trim: Arc<Trim>,
}

/// One target's slots and how many probes use them (hold or wait).
struct TargetEntry {
    slots: Arc<Semaphore>,
    users: usize,
}

/// What a probe holds while its document is in flight; dropping it releases everything.
/// Fields drop in order: the document's room first, the target's slot last.
#[must_use]
pub struct Held {
    /// The room its body takes (empty until the body starts to arrive).
    pub room: Room,
    large_parses: Arc<Semaphore>,
    turn: Option<OwnedSemaphorePermit>,
    _slot: Slot,
    _target: TargetSlot,
}

impl Held {
    /// Waits (at most until `deadline`) for the turn to parse a document of `len` bytes: at
    /// once below [`LARGE_DOCUMENT`], else when no other large document is being parsed.
    /// `false`: no turn in time.
    pub async fn turn_to_parse(&mut self, len: usize, deadline: Instant) -> bool {
        if len < LARGE_DOCUMENT || self.turn.is_some() {
            return true;
        }
        match tokio::time::timeout_at(deadline, self.large_parses.clone().acquire_owned()).await {
            Ok(Ok(p)) => {
                self.turn = Some(p);
                true
            }
            _ => false,
        }
    }
}

/// A slot of one target.
struct TargetSlot {
    _permit: OwnedSemaphorePermit,
    _user: TargetUser,
}

/// A probe counted as a user of its target's entry (holding a slot or waiting for one); the
/// entry goes when its last user does, so the map holds only targets probed now.
struct TargetUser {
    targets: Arc<Mutex<HashMap<String, TargetEntry>>>,
    key: String,
}

impl Drop for TargetUser {
    fn drop(&mut self) {
        let mut targets = self.targets.lock();
        if let Some(e) = targets.get_mut(&self.key) {
            e.users -= 1;
            if e.users == 0 {
                targets.remove(&self.key);
            }
        }
    }
}

/// A slot over all targets.
struct Slot {
    _permit: OwnedSemaphorePermit,
    in_use: IntGauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.in_use.add(-1);
    }
}

/// Why a probe got no capacity: the bound, for its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortage {
    /// Every slot of its target was held.
    Target(usize),
    /// Every slot over all targets was held.
    Slots(usize),
}

impl Limits {
    /// Limits for `options`, reporting into `metrics`.
    pub fn new(
        max_concurrent: usize,
        max_per_target: usize,
        body_budget: usize,
        metrics: ProbeCapacityMetrics,
    ) -> Limits {
        let max_concurrent = max_concurrent.max(1);
        let body_budget = body_budget.clamp(1, Semaphore::MAX_PERMITS);
        metrics.slots.set(max_concurrent as i64);
        metrics.body_budget.set(body_budget as i64);
        Limits {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            per_target: max_per_target.max(1),
            targets: Arc::default(),
            bodies: Arc::new(Semaphore::new(body_budget)),
            body_budget,
            large_parses: Arc::new(Semaphore::new(1)),
            mark: new_mark(),
            metrics,
            trim: Arc::default(),
        }
    }

    /// This process's mark in [`VIA_HEADER`].
    pub fn mark(&self) -> &str {
        &self.mark
    }

    /// Takes a slot of the target `key`, then a slot over all targets, waiting at most until
    /// `deadline`. The probe holds nothing while it waits for its target's slot.
    pub async fn acquire(&self, key: &str, deadline: Instant) -> Result<Held, Shortage> {
        let user = {
            let mut targets = self.targets.lock();
            let entry = targets
                .entry(key.to_owned())
                .or_insert_with(|| TargetEntry {
                    slots: Arc::new(Semaphore::new(self.per_target)),
                    users: 0,
                });
            entry.users += 1;
            (
                entry.slots.clone(),
                TargetUser {
                    targets: self.targets.clone(),
                    key: key.to_owned(),
                },
            )
        };
        let (slots, user) = user;
        let permit = tokio::time::timeout_at(deadline, slots.acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Shortage::Target(self.per_target))?;
        let target = TargetSlot {
            _permit: permit,
            _user: user,
        };
        let permit = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Shortage::Slots(self.max_concurrent))?;
        self.metrics.slots_in_use.add(1);
        Ok(Held {
            room: Room {
                bodies: self.bodies.clone(),
                budget: self.body_budget,
                permit: None,
                held: 0,
                deadline,
                waiting: false,
                in_flight: self.metrics.body_in_flight.clone(),
                trim: self.trim.clone(),
            },
            large_parses: self.large_parses.clone(),
            turn: None,
            _slot: Slot {
                _permit: permit,
                in_use: self.metrics.slots_in_use.clone(),
            },
            _target: target,
        })
    }

    /// Targets with a probe in flight or waiting (tests).
    #[cfg(test)]
    fn targets_known(&self) -> usize {
        self.targets.lock().len()
    }
}

/// A probe's share of the bytes in flight.
pub struct Room {
    bodies: Arc<Semaphore>,
    budget: usize,
    permit: Option<OwnedSemaphorePermit>,
    held: usize,
    deadline: Instant,
    /// Whether the probe is waiting for room now: a probe whose time runs out then failed for
    /// want of room, not for its target.
    waiting: bool,
    in_flight: IntGauge,
    trim: Arc<Trim>,
}

impl Room {
    /// Whether the probe was waiting for room when it was stopped.
    pub fn was_waiting(&self) -> bool {
        self.waiting
    }

    fn no_room(&self, total: usize, why: &str) -> FetchError {
        fail(
            SourceErrorReason::NoSlot,
            format!(
                "no room for a document of {total} bytes: {why} (--probe.max-body-bytes-in-flight is {} bytes over all probes)",
                self.budget
            ),
        )
    }
}

impl BodyRoom for Room {
    async fn make_room(&mut self, total: usize) -> Result<(), FetchError> {
        if total <= self.held {
            return Ok(());
        }
        if total > self.budget {
            return Err(fail(
                SourceErrorReason::TooLarge,
                format!(
                    "a document of {total} bytes is larger than --probe.max-body-bytes-in-flight ({} bytes)",
                    self.budget
                ),
            ));
        }
        let need = u32::try_from(total - self.held).map_err(|_| {
            fail(
                SourceErrorReason::TooLarge,
                format!("a document of {total} bytes is larger than a probe can hold"),
            )
        })?;
        let more = if self.held == 0 {
            // Holding none of the budget, a probe may wait for it: no one waits on it.
            self.waiting = true;
            let got = tokio::time::timeout_at(
                self.deadline,
                self.bodies.clone().acquire_many_owned(need),
            )
            .await;
            self.waiting = false;
            match got {
                Ok(Ok(p)) => p,
                _ => return Err(self.no_room(total, "the budget stayed in use by other probes")),
            }
        } else {
            // Holding some, it must not wait: two growing bodies would each wait for the
            // other's bytes.
            self.bodies
                .clone()
                .try_acquire_many_owned(need)
                .map_err(|_| self.no_room(total, "the body outgrew the room left"))?
        };
        match &mut self.permit {
            Some(p) => p.merge(more),
            None => self.permit = Some(more),
        }
        self.in_flight.add((total - self.held) as i64);
        self.held = total;
        Ok(())
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        if self.held == 0 {
            return;
        }
        self.permit = None;
        self.in_flight.add(-(self.held as i64));
        if self.held >= LARGE_DOCUMENT {
            self.trim.request();
        }
    }
}

/// Asks glibc to return free memory once large bodies are gone; one request at a time,
/// requests meanwhile folded into the next.
#[derive(Default)]
struct Trim {
    pending: AtomicBool,
}

impl Trim {
    fn request(self: &Arc<Self>) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        let run = move || {
            this.pending.store(false, Ordering::Release);
            release_free_memory();
        };
        // Off the runtime's workers: a trim walks every arena.
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn_blocking(run);
            }
            Err(_) => run(),
        }
    }
}

/// Returns free heap memory to the system. glibc keeps freed memory in its arenas (one per
/// thread that allocated, up to 8 per core), and after large blocks are freed its mmap
/// threshold has risen, so the next large blocks come from the arenas too; without this the
/// peak of a burst of large documents stays resident. (musl returns large blocks at once.)
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it takes each arena's lock itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// A random mark for this process (never shown; only compared with incoming headers).
fn new_mark() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let a = h.finish();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(a);
    format!("q{:016x}{:016x}", a, h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selfmetrics::SelfMetrics;
    use std::time::Duration;

    fn limits(slots: usize, per_target: usize, budget: usize) -> Limits {
        Limits::new(
            slots,
            per_target,
            budget,
            SelfMetrics::new().probe_capacity(),
        )
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(50)
    }

    #[tokio::test]
    async fn a_target_holds_at_most_its_share_and_waits_on_itself() {
        let l = limits(4, 2, 1 << 20);
        let a1 = l.acquire("http://a:1", soon()).await.unwrap();
        let _a2 = l.acquire("http://a:1", soon()).await.unwrap();
        // A third probe of the same target waits for one of its slots and gets none.
        assert_eq!(
            l.acquire("http://a:1", soon()).await.err(),
            Some(Shortage::Target(2))
        );
        // Other targets still find slots over all targets.
        let _b = l.acquire("http://b:1", soon()).await.unwrap();
        let _c = l.acquire("http://c:1", soon()).await.unwrap();
        assert_eq!(l.metrics.slots_in_use.get(), 4);
        // All four taken: the next target waits for a slot over all targets.
        assert_eq!(
            l.acquire("http://d:1", soon()).await.err(),
            Some(Shortage::Slots(4))
        );
        drop(a1);
        assert_eq!(l.metrics.slots_in_use.get(), 3);
        let _d = l.acquire("http://d:1", soon()).await.unwrap();
        assert_eq!(l.targets_known(), 4);
    }

    #[tokio::test]
    async fn target_entries_go_with_their_last_probe() {
        let l = limits(4, 1, 1 << 20);
        let a = l.acquire("http://a:1", soon()).await.unwrap();
        assert!(l.acquire("http://a:1", soon()).await.is_err());
        assert_eq!(l.targets_known(), 1);
        drop(a);
        assert_eq!(l.targets_known(), 0);
        assert_eq!(l.metrics.slots_in_use.get(), 0);
    }

    #[tokio::test]
    async fn room_is_waited_for_only_while_holding_none() {
        let l = limits(4, 4, 1000);
        let mut a = l.acquire("http://a:1", soon()).await.unwrap();
        let mut b = l.acquire("http://b:1", soon()).await.unwrap();
        a.room.make_room(600).await.unwrap();
        assert_eq!(l.metrics.body_in_flight.get(), 600);
        // b holds nothing: it waits, and gets no room in time.
        let e = b.room.make_room(500).await.unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::NoSlot);
        assert!(e.message.contains("stayed in use"), "{e:?}");
        b.room.make_room(300).await.unwrap();
        // b holds some now: growing past what is left fails at once.
        let e = b.room.make_room(500).await.unwrap_err();
        assert!(e.message.contains("outgrew"), "{e:?}");
        // Larger than the whole budget: too large, whatever else is in flight.
        let e = a.room.make_room(1001).await.unwrap_err();
        assert_eq!(e.reason, SourceErrorReason::TooLarge);
        // Growing within the room left is fine; releasing gives it all back.
        a.room.make_room(700).await.unwrap();
        assert_eq!(l.metrics.body_in_flight.get(), 1000);
        drop(a);
        drop(b);
        assert_eq!(l.metrics.body_in_flight.get(), 0);
        assert_eq!(l.bodies.available_permits(), 1000);
    }

    #[tokio::test]
    async fn large_documents_are_parsed_one_at_a_time() {
        let l = limits(4, 4, 1 << 30);
        let mut a = l.acquire("http://a:1", soon()).await.unwrap();
        let mut b = l.acquire("http://b:1", soon()).await.unwrap();
        assert!(a.turn_to_parse(LARGE_DOCUMENT, soon()).await);
        assert!(
            b.turn_to_parse(LARGE_DOCUMENT - 1, soon()).await,
            "small: at once"
        );
        assert!(
            !b.turn_to_parse(LARGE_DOCUMENT, soon()).await,
            "a's turn is not over"
        );
        drop(a);
        assert!(b.turn_to_parse(LARGE_DOCUMENT, soon()).await);
    }

    #[tokio::test]
    async fn a_waiting_body_gets_room_when_another_is_released() {
        let l = Arc::new(limits(4, 4, 1000));
        let mut a = l.acquire("http://a:1", soon()).await.unwrap();
        a.room.make_room(800).await.unwrap();
        let later = Instant::now() + Duration::from_secs(600);
        let mut b = l.acquire("http://b:1", later).await.unwrap();
        let waiter = tokio::spawn(async move { b.room.make_room(900).await.map(|_| b) });
        tokio::task::yield_now().await;
        drop(a);
        let b = waiter.await.unwrap().unwrap();
        assert_eq!(l.metrics.body_in_flight.get(), 900);
        drop(b);
        assert_eq!(l.metrics.body_in_flight.get(), 0);
    }
}
