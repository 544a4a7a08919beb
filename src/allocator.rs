//! glibc malloc settings for a process that runs for months and reloads.
//!
//! A reload frees nearly everything a config built (regexes, pipelines, 256 KiB read buffers,
//! parse and source threads) and builds it again, on new threads. glibc gives threads up to
//! 8 arenas per core, and with its defaults each arena keeps what it once held: the first freed
//! block over 128 KiB raises the mmap threshold (and the trim threshold to twice that) for
//! good, so later large blocks come from the arenas and their space is not returned. The live
//! heap stays flat across reloads (heaptrack: 1.7 MB at the 1st and the 300th), yet RSS went
//! from 14 to 26 MiB over the first few hundred reloads, a plateau whose height grows with the
//! number of arenas threads spread over. Hence, unless the user set them (`MALLOC_*` or
//! `GLIBC_TUNABLES`, glibc's documented knobs, win):
//!
//! - the mmap threshold is fixed at glibc's default, 128 KiB, which turns its raising off:
//!   large blocks are mapped and unmapped, arena tops are trimmed past 128 KiB;
//! - at most one arena per core (at least 2): more than that many threads never allocate at
//!   the same instant, and each arena more is memory held;
//! - after a reload, when the old config's memory has just been freed, `malloc_trim` hands the
//!   free pages back.
//!
//! `bench/reload_memory.py` measures it (BENCHMARKS.md has the figures). Other libcs (the static
//! musl build) have their own allocator: nothing is done there.

/// glibc's default mmap threshold; setting it explicitly keeps glibc from raising it.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 128 << 10;

/// Sets the allocator's thresholds and arena count; called once at start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        let user_set = |variable: &str, tunable: &str| {
            std::env::var_os(variable).is_some() || tunables.contains(tunable)
        };
        if !user_set("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold") {
            // SAFETY: mallopt only changes allocator parameters, under the allocator's locks.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        }
        if !user_set("MALLOC_ARENA_MAX", "glibc.malloc.arena_max") {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let arenas = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
        }
    }
}

/// Returns the free pages of the arenas to the system; called after a reload.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim walks the arenas under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
