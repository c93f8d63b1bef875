//! Running the renderers' external programs (helm, kustomize, transform
//! commands): never through a shell, stdin closed, stdout and stderr
//! captured, in a process group of their own so that a timeout kills the whole
//! tree the program started, not just its first process. On Linux each
//! program also runs under a [`reaper`] that kills every descendant when the
//! program exits, times out or kubesync goes away — including descendants
//! that left the process group with `setsid`. Also the PATH lookup used to
//! find those programs.
//!
//! This is the only place in `render` that spawns processes; it knows nothing
//! about applications or error messages (callers map [`RunError`]).

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

#[cfg(target_os = "linux")]
mod reaper;

/// Most stdout kept when it is the program's output (helm output of a large
/// chart fits many times over); more is [`Output::stdout_overflowed`].
pub(crate) const STDOUT_CAP: usize = 256 * 1024 * 1024;
/// Most stderr kept, and most stdout when it is not used: the tail.
const TAIL_CAP: usize = 64 * 1024;

/// What to keep of a program's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stdout {
    /// It is the program's output: keep up to this many bytes (callers use
    /// [`STDOUT_CAP`]); past that the pipe is closed and the overflow flagged.
    Keep(usize),
    /// It is not used: read it all, keep only its last 64 KiB.
    Tail,
}
/// How long to wait for the output pipes to close after the program exited
/// before killing whatever it left behind in its process group.
const LINGER: Duration = Duration::from_secs(2);

/// A finished program.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: ExitStatus,
    /// What was kept of stdout (see [`Stdout`]).
    pub stdout: Vec<u8>,
    /// How many bytes the program wrote to stdout in all.
    pub stdout_len: u64,
    /// The last 64 KiB of stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// Whether stdout was larger than what [`Stdout::Keep`] keeps.
    pub fn stdout_overflowed(&self) -> bool {
        self.stdout_len > self.stdout.len() as u64
    }
}

#[derive(Debug)]
pub(crate) enum RunError {
    /// The program could not be started.
    Spawn(std::io::Error),
    /// Waiting for it failed.
    Wait(std::io::Error),
    /// It ran longer than the timeout and was killed, with everything it
    /// started (its process group; on Linux every descendant).
    TimedOut,
}

/// Runs `cmd` to completion or until `timeout`, capturing its output.
pub(crate) fn run(mut cmd: Command, timeout: Duration, keep: Stdout) -> Result<Output, RunError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    #[cfg(target_os = "linux")]
    reaper::install(&mut cmd);
    let mut child = spawn_retrying_busy(&mut cmd).map_err(RunError::Spawn)?;
    let pgid = child.id() as libc::pid_t;

    let (tx, rx) = mpsc::channel::<(bool, Captured)>();
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers += 1;
        std::thread::spawn(move || {
            let captured = match keep {
                Stdout::Keep(cap) => read_capped(out, cap, false),
                Stdout::Tail => read_capped(out, TAIL_CAP, true),
            };
            let _ = tx.send((true, captured));
        });
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers += 1;
        std::thread::spawn(move || {
            let _ = tx.send((false, read_capped(err, TAIL_CAP, true)));
        });
    }
    drop(tx);

    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            stop(&mut child, pgid);
            let _ = collect(&rx, readers, Duration::from_secs(1));
            return Err(RunError::TimedOut);
        }
        Err(e) => {
            stop(&mut child, pgid);
            return Err(RunError::Wait(e));
        }
    };

    let mut got = Vec::new();
    let deadline = Instant::now() + LINGER;
    while got.len() < readers {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(part) => got.push(part),
            Err(_) => break,
        }
    }
    if got.len() < readers {
        // Something the program started still holds the pipes open (without
        // the reaper, or where it cannot list children). Without the reaper
        // the group still exists, so its id cannot have been reused; with it,
        // the group held only the reaper, already gone, so it is left alone.
        #[cfg(not(target_os = "linux"))]
        kill_group(pgid);
        let (stdout, stderr) = collect(&rx, readers - got.len(), Duration::from_secs(1));
        got.push((true, stdout));
        got.push((false, stderr));
    }
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    for (is_out, part) in got {
        let into = if is_out { &mut stdout } else { &mut stderr };
        into.total += part.total;
        into.bytes.extend(part.bytes);
    }
    Ok(Output {
        status,
        stdout: stdout.bytes,
        stdout_len: stdout.total,
        stderr: stderr.bytes,
    })
}

/// What a reader kept of a pipe, and how much it read.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    total: u64,
}

fn collect(
    rx: &mpsc::Receiver<(bool, Captured)>,
    n: usize,
    wait: Duration,
) -> (Captured, Captured) {
    let deadline = Instant::now() + wait;
    let mut stdout = Captured::default();
    let mut stderr = Captured::default();
    for _ in 0..n {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((true, b)) => stdout = b,
            Ok((false, b)) => stderr = b,
            Err(_) => break,
        }
    }
    (stdout, stderr)
}

/// Kills a running program and everything it started.
fn stop(child: &mut std::process::Child, pgid: libc::pid_t) {
    #[cfg(target_os = "linux")]
    {
        let _ = pgid;
        reaper::stop(child, Duration::from_secs(2));
    }
    #[cfg(not(target_os = "linux"))]
    {
        kill_group(pgid);
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[cfg_attr(target_os = "linux", allow(dead_code))]
fn kill_group(pgid: libc::pid_t) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created for the child; it has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Reads `r` keeping at most `cap` bytes: the first ones (then it stops at
/// the first byte over the cap, counted in `total`), or, when `keep_tail`,
/// the last ones of everything to the end (memory stays within twice `cap`,
/// and each byte is moved at most once more).
fn read_capped(mut r: impl Read, cap: usize, keep_tail: bool) -> Captured {
    let mut out = Captured::default();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.total += n as u64;
                if keep_tail {
                    out.bytes.extend_from_slice(&buf[..n]);
                    if out.bytes.len() > 2 * cap {
                        let excess = out.bytes.len() - cap;
                        out.bytes.drain(..excess);
                    }
                } else {
                    let take = n.min(cap - out.bytes.len());
                    out.bytes.extend_from_slice(&buf[..take]);
                    if take < n {
                        // Over the cap: stop reading; closing the pipe ends
                        // a program still writing (EPIPE), rather than
                        // draining it to the end.
                        break;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if keep_tail && out.bytes.len() > cap {
        let excess = out.bytes.len() - cap;
        out.bytes.drain(..excess);
    }
    out
}

/// `exit status 3`, `killed by signal 9`.
pub(crate) fn status_text(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => status.to_string(),
    }
}

/// The last `max_lines` lines of `bytes`, lossily decoded and trimmed.
pub(crate) fn tail_lines(bytes: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max_lines {
        return text.to_string();
    }
    let mut out = format!("[… {} earlier lines]\n", lines.len() - max_lines);
    out.push_str(&lines[lines.len() - max_lines..].join("\n"));
    out
}

/// Whether `path` is a regular file (after symlinks) with an execute bit.
pub(crate) fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Looks `name` up in a PATH-style list of directories, like a shell would
/// (empty entries are skipped rather than meaning the current directory).
pub fn find_in_path(name: &OsStr, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Spawns `cmd`, retrying briefly while exec fails with ETXTBSY ("Text file
/// busy"). A script written just before it runs (a transform's input is a
/// fresh copy) can be briefly held open for writing by a child another
/// thread forked meanwhile, until that child execs or closes its
/// descriptors: a window of microseconds that parallel renders do hit.
fn spawn_retrying_busy(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut delay = std::time::Duration::from_millis(2);
    for _ in 0..10 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn captures_output_and_status() {
        let out = run(
            sh("echo out; echo err >&2; exit 3"),
            Duration::from_secs(10),
            Stdout::Keep(STDOUT_CAP),
        )
        .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(status_text(out.status), "exit status 3");
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("survivor");
        let script = format!("(sleep 2; touch {}) & sleep 30", marker.to_string_lossy());
        let start = Instant::now();
        let err = run(sh(&script), Duration::from_millis(300), Stdout::Tail).unwrap_err();
        assert!(matches!(err, RunError::TimedOut), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the background child was not killed");
    }

    #[test]
    fn leftover_background_children_do_not_hang_the_caller() {
        let start = Instant::now();
        let out = run(
            sh("sleep 30 & echo done"),
            Duration::from_secs(20),
            Stdout::Keep(STDOUT_CAP),
        )
        .unwrap();
        assert_eq!(out.stdout, b"done\n");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn unused_stdout_is_drained_keeping_only_its_tail() {
        // 64 MiB through a pipe; only the last 64 KiB stays in memory.
        let out = run(
            sh("head -c 67108864 /dev/zero; printf end"),
            Duration::from_secs(60),
            Stdout::Tail,
        )
        .unwrap();
        assert_eq!(out.stdout_len, 64 * 1024 * 1024 + 3);
        assert_eq!(out.stdout.len(), TAIL_CAP);
        assert!(out.stdout.ends_with(b"end"));
        let kept = read_capped(&b"abcdef"[..], 4, false);
        assert_eq!(kept.bytes.as_slice(), b"abcd");
        assert!(kept.total > 4);
        let out = run(sh("yes"), Duration::from_secs(60), Stdout::Keep(1 << 20)).unwrap();
        assert_eq!(out.stdout.len(), 1 << 20);
        assert!(out.stdout_overflowed());
        let tail = read_capped(&b"abcdef"[..], 4, true);
        assert_eq!((tail.bytes.as_slice(), tail.total), (&b"cdef"[..], 6));
    }

    #[test]
    fn descendants_that_left_the_group_die_with_the_program() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("after-exit");
        let timed = dir.path().join("after-timeout");
        let script = format!(
            "setsid sh -c 'sleep 1; touch {}' & echo started",
            done.to_string_lossy()
        );
        let start = Instant::now();
        let out = run(
            sh(&script),
            Duration::from_secs(20),
            Stdout::Keep(STDOUT_CAP),
        )
        .unwrap();
        assert_eq!(out.stdout, b"started\n");
        assert!(start.elapsed() < Duration::from_secs(5));
        let script = format!(
            "setsid sh -c 'sleep 1; touch {}' & sleep 30",
            timed.to_string_lossy()
        );
        let err = run(sh(&script), Duration::from_millis(300), Stdout::Tail).unwrap_err();
        assert!(matches!(err, RunError::TimedOut), "{err:?}");
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!done.exists(), "a setsid child outlived its program");
        assert!(!timed.exists(), "a setsid child outlived the timeout");
    }

    #[test]
    fn exit_codes_and_signals_pass_through_the_reaper() {
        let out = run(
            sh("exit 7"),
            Duration::from_secs(10),
            Stdout::Keep(STDOUT_CAP),
        )
        .unwrap();
        assert_eq!(status_text(out.status), "exit status 7");
        let out = run(
            sh("kill -TERM $$"),
            Duration::from_secs(10),
            Stdout::Keep(STDOUT_CAP),
        )
        .unwrap();
        assert_eq!(status_text(out.status), "killed by signal 15");
        let err = run(
            Command::new("/nonexistent/program"),
            Duration::from_secs(10),
            Stdout::Keep(STDOUT_CAP),
        )
        .unwrap_err();
        assert!(
            matches!(&err, RunError::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound),
            "{err:?}"
        );
    }

    #[test]
    fn tails_keep_the_last_lines() {
        assert_eq!(tail_lines(b"a\nb\nc\n", 5), "a\nb\nc");
        assert_eq!(tail_lines(b"a\nb\nc\n", 2), "[… 1 earlier lines]\nb\nc");
    }

    #[test]
    fn path_lookup() {
        assert!(find_in_path(OsStr::new("sh"), OsStr::new("/usr/bin:/bin")).is_some());
        assert!(find_in_path(OsStr::new("sh"), OsStr::new("")).is_none());
    }
}
