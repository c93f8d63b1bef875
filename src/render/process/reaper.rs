//! Linux: a reaper between kubesync and each program it runs, so that every
//! descendant of the program dies with it — including those that left its
//! process group with `setsid`, which a process-group kill does not reach.
//!
//! [`install`] adds a `pre_exec` step to the command. In the forked child
//! (before exec) it forks once more: the new child goes on to exec the
//! program, in a process group of its own; the first child stays behind as
//! the *reaper*: a child subreaper (`PR_SET_CHILD_SUBREAPER`), so every
//! orphaned descendant of the program is re-parented to it rather than to
//! init. The reaper closes every file descriptor (the output pipes then close
//! when the program's tree is gone) and waits, until:
//!
//! - the program exits: the reaper kills what is left of its tree;
//! - it receives SIGTERM (kubesync's timeout, see [`stop`]): it kills the
//!   whole tree;
//! - kubesync itself is gone (its parent changed): it kills the whole tree.
//!
//! "Kill the whole tree" is: SIGKILL the program's process group, then, until
//! it has no child left, SIGKILL every child listed in
//! `/proc/thread-self/children` and reap what has exited, every 5 ms (a
//! dying process's children are re-parented to the reaper, and listed next
//! round). The
//! reaper then exits as the program did (same exit code, or the same signal),
//! so callers see the program's status.
//!
//! The pre-exec code runs in a child of a multi-threaded process: it only
//! makes system calls (no allocation, no locks, no panics). Without
//! `/proc/thread-self/children` (a kernel without `CONFIG_PROC_CHILDREN`)
//! only the process group is killed, as without the reaper.

use std::io;
use std::mem::MaybeUninit;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::Duration;

use wait_timeout::ChildExt;

/// How often the reaper checks that kubesync is still there.
const POLL_NS: libc::c_long = 100_000_000;

/// Makes `cmd` run its program under a reaper.
pub(super) fn install(cmd: &mut Command) {
    // Taken here rather than with getppid() after the fork, so that a
    // kubesync gone before the reaper starts is noticed too.
    let kubesync = std::process::id() as libc::pid_t;
    // SAFETY: `split` only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(move || split(kubesync));
    }
}

/// Stops a program started with [`install`]: asks the reaper to kill the
/// program's whole tree, then, if it has not exited within `grace`, kills the
/// reaper itself (the tree's leftovers then go to init, as without a reaper).
pub(super) fn stop(child: &mut Child, grace: Duration) {
    // SAFETY: kill(2) on our own child's pid, which is not reaped (so not
    // reused) until `wait` below.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    if !matches!(child.wait_timeout(grace), Ok(Some(_))) {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset only sets bits.
    unsafe {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(set.as_mut_ptr());
        for s in signals {
            libc::sigaddset(set.as_mut_ptr(), *s);
        }
        set.assume_init()
    }
}

/// The pre-exec step: returns in the program's process (which then execs),
/// never in the reaper's.
fn split(parent: libc::pid_t) -> io::Result<()> {
    // SAFETY: plain system calls on values on this stack.
    unsafe {
        let waited = sigset(&[libc::SIGTERM, libc::SIGCHLD]);
        let mut old = MaybeUninit::<libc::sigset_t>::uninit();
        // Blocked before the fork, so a SIGTERM cannot slip in between.
        if libc::sigprocmask(libc::SIG_BLOCK, &waited, old.as_mut_ptr()) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        match libc::fork() {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                // The program: its own process group, the signal mask it
                // would have had.
                libc::setpgid(0, 0);
                libc::sigprocmask(libc::SIG_SETMASK, old.as_ptr(), std::ptr::null_mut());
                Ok(())
            }
            program => reap(program, parent, &waited),
        }
    }
}

/// The reaper's life; never returns.
unsafe fn reap(program: libc::pid_t, parent: libc::pid_t, waited: &libc::sigset_t) -> ! {
    close_all_fds();
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: POLL_NS,
    };
    let mut status: Option<libc::c_int> = None;
    loop {
        let sig = libc::sigtimedwait(waited, std::ptr::null_mut(), &timeout);
        loop {
            let mut st = 0;
            let pid = libc::waitpid(-1, &mut st, libc::WNOHANG);
            if pid <= 0 {
                break;
            }
            if pid == program {
                status = Some(st);
            }
        }
        if status.is_some() || sig == libc::SIGTERM || libc::getppid() != parent {
            break;
        }
    }
    if let Some(st) = kill_tree(program) {
        status = Some(st);
    }
    exit_like(status)
}

/// Kills the program's process group and every descendant re-parented to
/// us, reaping them all; returns the program's wait status if reaped here.
/// Polls rather than blocks: a descendant may be re-parented to us at any
/// moment (when its own parent dies), without a wait event of ours.
unsafe fn kill_tree(program: libc::pid_t) -> Option<libc::c_int> {
    libc::kill(-program, libc::SIGKILL);
    let mut status = None;
    let pause = libc::timespec {
        tv_sec: 0,
        tv_nsec: 5_000_000,
    };
    loop {
        let can_list = kill_children();
        loop {
            let mut st = 0;
            let pid = libc::waitpid(-1, &mut st, libc::WNOHANG);
            if pid == program {
                status = Some(st);
            }
            if pid > 0 {
                continue;
            }
            if pid < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if pid < 0 || !can_list {
                // No child left (ECHILD); or children we cannot list, whose
                // exits we do not wait for.
                return status;
            }
            break;
        }
        libc::nanosleep(&pause, std::ptr::null_mut());
    }
}

/// SIGKILLs every child listed in `/proc/thread-self/children`; false when
/// that file cannot be read.
unsafe fn kill_children() -> bool {
    let fd = libc::open(
        c"/proc/thread-self/children".as_ptr(),
        libc::O_RDONLY | libc::O_CLOEXEC,
    );
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 4096];
    let mut pid: libc::pid_t = 0;
    loop {
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        if n < 0 && *libc::__errno_location() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            break;
        }
        for &b in &buf[..n as usize] {
            if b.is_ascii_digit() {
                pid = pid
                    .saturating_mul(10)
                    .saturating_add((b - b'0') as libc::pid_t);
            } else {
                if pid > 0 {
                    libc::kill(pid, libc::SIGKILL);
                }
                pid = 0;
            }
        }
    }
    if pid > 0 {
        libc::kill(pid, libc::SIGKILL);
    }
    libc::close(fd);
    true
}

unsafe fn close_all_fds() {
    if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
        for fd in 0..4096 {
            libc::close(fd);
        }
    }
}

/// Exits with the program's exit code, or dies of the signal it died of.
unsafe fn exit_like(status: Option<libc::c_int>) -> ! {
    let Some(st) = status else {
        // Killed before it was ever reaped: report SIGKILL.
        libc::_exit(128 + libc::SIGKILL)
    };
    if libc::WIFEXITED(st) {
        libc::_exit(libc::WEXITSTATUS(st));
    }
    if libc::WIFSIGNALED(st) {
        let sig = libc::WTERMSIG(st);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        let mut dfl = MaybeUninit::<libc::sigaction>::zeroed().assume_init();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &dfl, std::ptr::null_mut());
        let only = sigset(&[sig]);
        libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }
    libc::_exit(1)
}
