//! Standard output and standard error of the commands. Everything a command
//! prints for its reader (tables, YAML, JSON, dot) goes through [`write`]
//! (or the `out!` / `outln!` macros), and every diagnostic line through
//! [`diagnostic`] (`errln!`); never `print!` or `eprint!`, which panic when
//! the reader has gone.
//!
//! A closed pipe (`kubesync render | head`) is not an error: like ripgrep,
//! kubesync stops writing, finishes what it was doing (so temporary
//! directories are still cleaned up and a sync is never cut in half) and
//! exits 0 without a word ([`Stdout::Closed`]). Any other write error
//! (a full disk) is reported once on stderr and makes the exit code 1.
//!
//! Diagnostics (errors, warnings, notes) go to stderr; a write error there
//! is ignored, as there is nowhere left to report it. Logs go to stderr
//! through `tracing`, which ignores write errors as well.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicU8, Ordering};

/// What became of standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    /// Everything written so far was written.
    Open,
    /// The reader closed the pipe; nothing more is written.
    Closed,
    /// A write failed otherwise (reported on stderr); nothing more is written.
    Failed,
}

static STATE: AtomicU8 = AtomicU8::new(0);

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

/// The state of standard output after the writes so far.
pub fn state() -> Stdout {
    match STATE.load(Ordering::SeqCst) {
        OPEN => Stdout::Open,
        CLOSED => Stdout::Closed,
        _ => Stdout::Failed,
    }
}

/// Writes `text` to standard output and flushes it; does nothing once
/// standard output is closed or failed.
pub fn write(text: &str) {
    if STATE.load(Ordering::SeqCst) != OPEN {
        return;
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            STATE.store(CLOSED, Ordering::SeqCst);
        } else if STATE.swap(FAILED, Ordering::SeqCst) == OPEN {
            diagnostic(&format!("error: cannot write to standard output: {e}"));
        }
    }
}

/// Writes one line to standard error, ignoring write errors.
pub fn diagnostic(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err
        .write_all(line.as_bytes())
        .and_then(|()| err.write_all(b"\n"));
}

/// `print!` through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::stdio::write(&format!($($arg)*))
    };
}

/// `println!` through [`write`].
macro_rules! outln {
    () => {
        $crate::cli::stdio::write("\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::stdio::write(&format!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`diagnostic`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::stdio::diagnostic(&format!($($arg)*))
    };
}

pub(crate) use {errln, out, outln};
