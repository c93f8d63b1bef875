//! Running the renderers' external programs (helm, kustomize, transform
//! commands): never through a shell, stdin closed, stdout and stderr
//! captured, in a process group of their own so that a timeout kills the whole
//! tree the program started, not just its first process. Also the PATH lookup
//! used to find those programs.
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

/// Most stdout kept (helm output of a large chart fits many times over).
const STDOUT_CAP: usize = 256 * 1024 * 1024;
/// Most stderr kept: its tail.
const STDERR_CAP: usize = 64 * 1024;
/// How long to wait for the output pipes to close after the program exited
/// before killing whatever it left behind in its process group.
const LINGER: Duration = Duration::from_secs(2);

/// A finished program.
#[derive(Debug)]
pub(crate) struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug)]
pub(crate) enum RunError {
    /// The program could not be started.
    Spawn(std::io::Error),
    /// Waiting for it failed.
    Wait(std::io::Error),
    /// It ran longer than the timeout and was killed, with its process group.
    TimedOut,
}

/// Runs `cmd` to completion or until `timeout`, capturing its output.
pub(crate) fn run(mut cmd: Command, timeout: Duration) -> Result<Output, RunError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let pgid = child.id() as libc::pid_t;

    let (tx, rx) = mpsc::channel::<(bool, Vec<u8>)>();
    let mut readers = 0;
    if let Some(out) = child.stdout.take() {
        let tx = tx.clone();
        readers += 1;
        std::thread::spawn(move || {
            let _ = tx.send((true, read_capped(out, STDOUT_CAP, false)));
        });
    }
    if let Some(err) = child.stderr.take() {
        let tx = tx.clone();
        readers += 1;
        std::thread::spawn(move || {
            let _ = tx.send((false, read_capped(err, STDERR_CAP, true)));
        });
    }
    drop(tx);

    let status = match child.wait_timeout(timeout) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group(pgid);
            let _ = child.kill();
            let _ = child.wait();
            let _ = collect(&rx, readers, Duration::from_secs(1));
            return Err(RunError::TimedOut);
        }
        Err(e) => {
            kill_group(pgid);
            let _ = child.kill();
            let _ = child.wait();
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
        // Something the program started still holds the pipes open; the
        // group still exists, so its id cannot have been reused.
        kill_group(pgid);
        let (stdout, stderr) = collect(&rx, readers - got.len(), Duration::from_secs(1));
        got.push((true, stdout));
        got.push((false, stderr));
    }
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    for (is_out, bytes) in got {
        if is_out {
            stdout.extend(bytes);
        } else {
            stderr.extend(bytes);
        }
    }
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn collect(rx: &mpsc::Receiver<(bool, Vec<u8>)>, n: usize, wait: Duration) -> (Vec<u8>, Vec<u8>) {
    let deadline = Instant::now() + wait;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    for _ in 0..n {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((true, b)) => stdout = b,
            Ok((false, b)) => stderr = b,
            Err(_) => break,
        }
    }
    (stdout, stderr)
}

fn kill_group(pgid: libc::pid_t) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group we
        // created for the child; it has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Reads `r` to its end, keeping at most `cap` bytes: the first ones, or the
/// last ones when `keep_tail`.
fn read_capped(mut r: impl Read, cap: usize, keep_tail: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if keep_tail {
                    out.extend_from_slice(&buf[..n]);
                    if out.len() > cap {
                        let excess = out.len() - cap;
                        out.drain(..excess);
                    }
                } else if out.len() < cap {
                    let take = n.min(cap - out.len());
                    out.extend_from_slice(&buf[..take]);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
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
        let err = run(sh(&script), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, RunError::TimedOut), "{err:?}");
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "the background child was not killed");
    }

    #[test]
    fn leftover_background_children_do_not_hang_the_caller() {
        let start = Instant::now();
        let out = run(sh("sleep 30 & echo done"), Duration::from_secs(20)).unwrap();
        assert_eq!(out.stdout, b"done\n");
        assert!(start.elapsed() < Duration::from_secs(10));
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
