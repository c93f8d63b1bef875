//! Shared by the benchmarks: running a child process and measuring it.

use std::process::Command;
use std::time::{Duration, Instant};

/// What one measured run of a child process took.
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size of the child, in KiB (from `wait4`). Linux
    /// charges a child the forking parent's RSS until it execs, so the
    /// parent must stay small for this to measure the child alone.
    pub peak_rss_kb: u64,
    pub success: bool,
}

/// Spawns `cmd`, waits for it with `wait4`, and reports wall time, peak RSS
/// and whether it exited 0.
pub fn measure(mut cmd: Command) -> Measured {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn the measured command");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting on our own child with valid out-pointers; the child
    // is reaped here, so its handle is dropped without another wait.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    drop(child);
    assert_eq!(r, pid, "wait4");
    Measured {
        wall,
        peak_rss_kb: usage.ru_maxrss as u64,
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
    }
}
