//! A progress line per epoch: a bar redrawn in place on a terminal, plain log lines elsewhere.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// How the trainer reports progress within an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum ProgressStyle {
    /// A bar on a terminal, log lines when standard error is not one (a file, CI).
    #[default]
    Auto,
    /// Log lines only.
    Lines,
    /// Nothing at all: no progress, no epoch summaries, no notes (use a [`Callback`] to
    /// log in your own way).
    ///
    /// [`Callback`]: super::Callback
    Quiet,
}

pub(super) struct Progress {
    bar: bool,
    quiet: bool,
    label: String,
    total: usize,
    started: Instant,
}

impl Progress {
    pub(super) fn new(style: ProgressStyle, label: String, total: usize) -> Self {
        Self {
            bar: style == ProgressStyle::Auto && std::io::stderr().is_terminal(),
            quiet: style == ProgressStyle::Quiet,
            label,
            total,
            started: Instant::now(),
        }
    }

    /// Reports `done` batches of `total`, `images` images so far, and the running loss and
    /// accuracy.
    pub(super) fn update(&self, done: usize, images: usize, loss: f32, accuracy: f32) {
        if self.quiet {
            return;
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = images as f64 / elapsed.max(1e-9);
        let eta = if done == 0 {
            0.0
        } else {
            elapsed / done as f64 * (self.total - done.min(self.total)) as f64
        };
        let width = 24;
        let filled = (width * done) / self.total.max(1);
        let line = format!(
            "{} [{}{}] {done}/{} loss {loss:.4} acc {:.1}% {rate:.1} img/s ETA {}:{:02}",
            self.label,
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.total,
            100.0 * accuracy,
            eta as u64 / 60,
            eta as u64 % 60
        );
        let mut err = std::io::stderr().lock();
        if self.bar {
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
        } else {
            let _ = writeln!(err, "{line}");
        }
    }

    pub(super) fn finish(&self) {
        if self.bar {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}
