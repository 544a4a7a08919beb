//! Nothing a command source starts outlives its fetch.
//!
//! A command runs in its own process group, which is killed whole when the fetch ends (or is
//! abandoned). A process that left the group (`setsid -f`, a daemon's double fork) is still
//! found: every command runs with a marker in its environment (`QUARRY_FETCH=<run>`), which its
//! descendants inherit, and the exporter is a child subreaper, so orphans are re-parented to it
//! instead of to init. When a fetch ends, every process carrying its marker is killed, and the
//! adopted children that died are reaped (as PID 1 in a container the exporter must reap
//! orphans anyway, or their zombies pile up). Children that tokio spawned and still waits for
//! are never reaped here: only `waitpid` on a specific adopted pid, never `waitpid(-1)`.
//!
//! Limits (documented in CONFIG.md): a process that both leaves the group and clears its
//! environment is found only while it is the exporter's child (re-parented to it).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// The environment variable that marks a command's processes.
pub const MARKER_VAR: &str = "QUARRY_FETCH";

/// Children tokio spawned and still waits for: never reaped here.
static DIRECT: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
/// Held while a command is spawned until its pid is in [`DIRECT`], and while a sweep looks at
/// the processes and acts: a sweep never sees a direct child before it is protected (it
/// reaped a command that had already exited, so tokio's wait failed with ECHILD, or killed
/// one whose environment it could not read yet, seen under load as "No child processes" and
/// "exited with signal 9" from commands that had succeeded).
static SPAWN_OR_SWEEP: Mutex<()> = Mutex::new(());
static RUNS: AtomicU64 = AtomicU64::new(1);
static SUBREAPER: Once = Once::new();

fn direct() -> std::sync::MutexGuard<'static, Option<HashSet<u32>>> {
    DIRECT.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes the exporter the reaper of its orphaned descendants (once per process).
pub fn become_subreaper() {
    SUBREAPER.call_once(|| {
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if rc != 0 {
            tracing::warn!(
                "cannot become a child subreaper ({}); processes that commands detach may outlive their fetch",
                std::io::Error::last_os_error()
            );
        }
    });
}

/// Held across spawning a command and [`Run::new`] with its pid (see [`SPAWN_OR_SWEEP`]).
pub fn spawning() -> std::sync::MutexGuard<'static, ()> {
    SPAWN_OR_SWEEP.lock().unwrap_or_else(|e| e.into_inner())
}

/// A new marker value for one command run.
pub fn new_marker() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

/// One running command: registered while tokio owns its direct child; dropping it kills what
/// is left of the run (group and marked processes) and reaps adopted orphans.
pub struct Run {
    marker: String,
    pgid: Option<i32>,
    direct: Option<u32>,
}

impl Run {
    /// Tracks the run whose direct child is `pid` (also its process group) with `marker`.
    pub fn new(marker: String, pid: Option<u32>) -> Run {
        if let Some(pid) = pid {
            direct().get_or_insert_with(HashSet::new).insert(pid);
        }
        Run {
            marker,
            pgid: pid.map(|p| p as i32),
            direct: pid,
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill(2) with a negative pid signals the process group we created.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let marker = std::mem::take(&mut self.marker);
        let direct_pid = self.direct;
        let sweep = move || {
            // tokio reaps the direct child (kill_on_drop); until then it stays registered so a
            // concurrent sweep leaves its zombie alone.
            sweep(&marker, direct_pid);
            if let Some(pid) = direct_pid {
                if let Some(set) = direct().as_mut() {
                    set.remove(&pid);
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(sweep);
            }
            Err(_) => sweep(),
        }
    }
}

/// A process as `/proc` shows it.
struct Proc {
    pid: u32,
    ppid: u32,
    zombie: bool,
}

fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parens: split after the
            // last ')'.
            let rest = &stat[stat.rfind(')')? + 2..];
            let mut fields = rest.split(' ');
            let state = fields.next()?;
            let ppid = fields.next()?.parse().ok()?;
            Some(Proc {
                pid,
                ppid,
                zombie: state == "Z" || state == "X",
            })
        })
        .collect()
}

/// Whether process `pid` carries `QUARRY_FETCH=<marker>`; `None` when its environment cannot
/// be read (gone, another user, a zombie).
fn carries(pid: u32, marker: &str) -> Option<bool> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    if env.is_empty() {
        return None;
    }
    let wanted = format!("{MARKER_VAR}={marker}");
    Some(env.split(|b| *b == 0).any(|v| v == wanted.as_bytes()))
}

/// Kills what is left of run `marker` and reaps the exporter's adopted children that died.
fn sweep(marker: &str, direct_pid: Option<u32>) {
    let me = std::process::id();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let looking = spawning();
        let procs = processes();
        let protected: HashSet<u32> = direct().as_ref().cloned().unwrap_or_default();
        let mut left = 0;
        for p in &procs {
            if p.pid == me || Some(p.pid) == direct_pid && !p.zombie {
                // The direct child is killed with its group and reaped by tokio.
                continue;
            }
            let ours = p.ppid == me && !protected.contains(&p.pid);
            if p.zombie {
                if ours {
                    reap(p.pid);
                }
                continue;
            }
            let marked = carries(p.pid, marker);
            // Marked processes anywhere; adopted children whose environment is unreadable.
            if marked == Some(true) || (ours && marked.is_none()) {
                // SAFETY: kill(2) on a pid we just read from /proc.
                unsafe {
                    libc::kill(p.pid as i32, libc::SIGKILL);
                }
                left += 1;
                if ours {
                    reap(p.pid);
                }
            }
        }
        drop(looking);
        if left == 0 || Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn reap(pid: u32) {
    let mut status = 0;
    // SAFETY: waitpid on one specific pid that is our (adopted) child; never -1.
    unsafe {
        libc::waitpid(pid as i32, &mut status, libc::WNOHANG);
    }
}
