//! Sync progress on stderr. On a terminal: one line per app under a bar per
//! topological level, redrawn in place while the level runs and left on
//! screen once it is done. Otherwise (CI, pipes, logs): one plain line per
//! app as it finishes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use super::stdio::errln;
use crate::model::AppName;
use crate::sync::{AppReport, Progress};

enum State {
    Waiting,
    Running(Instant),
    Done { ok: bool, line: String },
}

struct Screen {
    states: HashMap<AppName, State>,
    /// Levels already printed for good.
    printed: usize,
    /// Lines of the live block currently on screen.
    block: usize,
}

/// The progress display of `bootstrap` and `sync`.
pub struct Display {
    start: Instant,
    tty: bool,
    levels: Vec<Vec<AppName>>,
    screen: Mutex<Screen>,
}

impl Display {
    /// `levels`: the apps that will run, by topological level.
    pub fn new(levels: Vec<Vec<AppName>>, tty: bool) -> Self {
        let states = levels
            .iter()
            .flatten()
            .map(|a| (a.clone(), State::Waiting))
            .collect();
        Display {
            start: Instant::now(),
            tty,
            levels,
            screen: Mutex::new(Screen {
                states,
                printed: 0,
                block: 0,
            }),
        }
    }

    fn line(&self, r: &AppReport) -> String {
        format!(
            "{:<24} {:<10} {:<10} {:<11} {}",
            r.name.as_str(),
            r.outcome.label(),
            r.sync.to_string(),
            r.health.health.to_string(),
            r.message()
        )
    }

    fn redraw(&self, screen: &mut Screen) {
        let mut out = String::new();
        if screen.block > 0 {
            // Up to the start of the live block, and clear it.
            let _ = write!(out, "\x1b[{}A\x1b[J", screen.block);
        }
        let done = |s: &Screen, a: &AppName| matches!(s.states.get(a), Some(State::Done { .. }));
        // Finished levels are printed once, for good.
        while screen.printed < self.levels.len()
            && self.levels[screen.printed].iter().all(|a| done(screen, a))
        {
            self.draw_level(screen, screen.printed, &mut out);
            screen.printed += 1;
        }
        // The live block: levels that have started.
        let mut block = String::new();
        for i in screen.printed..self.levels.len() {
            let active = self.levels[i]
                .iter()
                .any(|a| !matches!(screen.states.get(a), Some(State::Waiting)));
            if !active {
                break;
            }
            self.draw_level(screen, i, &mut block);
        }
        screen.block = block.lines().count();
        out.push_str(&block);
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(out.as_bytes());
        let _ = err.flush();
    }

    fn draw_level(&self, screen: &Screen, i: usize, out: &mut String) {
        let apps = &self.levels[i];
        let finished = apps
            .iter()
            .filter(|a| matches!(screen.states.get(*a), Some(State::Done { .. })))
            .count();
        let failed = apps
            .iter()
            .filter(|a| matches!(screen.states.get(*a), Some(State::Done { ok: false, .. })))
            .count();
        const WIDTH: usize = 24;
        let filled = (finished * WIDTH).checked_div(apps.len()).unwrap_or(WIDTH);
        let _ = writeln!(
            out,
            "level {i} [{}{}] {finished}/{}{}",
            "█".repeat(filled),
            "░".repeat(WIDTH - filled),
            apps.len(),
            if failed > 0 {
                format!(", {failed} not ok")
            } else {
                String::new()
            }
        );
        for a in apps {
            let text = match screen.states.get(a) {
                Some(State::Done { line, .. }) => line.clone(),
                Some(State::Running(since)) => format!(
                    "{:<24} syncing… {:.1}s",
                    a.as_str(),
                    since.elapsed().as_secs_f64()
                ),
                _ => format!("{:<24} waiting", a.as_str()),
            };
            let _ = writeln!(out, "  {text}");
        }
    }
}

impl Progress for Display {
    fn started(&self, app: &AppName) {
        if !self.tty {
            return;
        }
        if let Ok(mut s) = self.screen.lock() {
            s.states.insert(app.clone(), State::Running(Instant::now()));
            self.redraw(&mut s);
        }
    }

    fn finished(&self, r: &AppReport) {
        if !self.tty {
            errln!(
                "[{:>6.1}s] {}",
                self.start.elapsed().as_secs_f64(),
                self.line(r)
            );
            return;
        }
        if let Ok(mut s) = self.screen.lock() {
            let ok = r.outcome.is_success();
            s.states.insert(
                r.name.clone(),
                State::Done {
                    ok,
                    line: self.line(r),
                },
            );
            self.redraw(&mut s);
        }
    }
}
