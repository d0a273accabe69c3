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

/// Progress within one epoch: an `indicatif` bar on a terminal (rate, ETA, fitted to the
/// terminal's width), a log line per update elsewhere, or nothing.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    lines: bool,
    label: String,
    total: usize,
    started: Instant,
}

impl Progress {
    pub(super) fn new(style: ProgressStyle, label: String, total: usize) -> Self {
        let on_terminal = style == ProgressStyle::Auto && std::io::stderr().is_terminal();
        let bar = on_terminal.then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            let template = "{prefix} {wide_bar} {pos}/{len} {msg} ETA {eta}";
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_prefix(label.clone());
            bar
        });
        Self {
            lines: bar.is_none() && style != ProgressStyle::Quiet,
            bar,
            label,
            total,
            started: Instant::now(),
        }
    }

    /// Reports `done` batches of `total`, `images` images so far, and the running loss and
    /// accuracy.
    pub(super) fn update(&self, done: usize, images: usize, loss: f32, accuracy: f32) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = images as f64 / elapsed.max(1e-9);
        let status = format!(
            "loss {loss:.4} acc {:.1}% {rate:.1} img/s",
            100.0 * accuracy
        );
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            bar.set_message(status);
        } else if self.lines {
            let eta = if done == 0 {
                0.0
            } else {
                elapsed / done as f64 * (self.total - done.min(self.total)) as f64
            };
            let mut err = std::io::stderr().lock();
            let _ = writeln!(
                err,
                "{} {done}/{} {status} ETA {}:{:02}",
                self.label,
                self.total,
                eta as u64 / 60,
                eta as u64 % 60
            );
        }
    }

    /// Clears the bar (the epoch's summary line follows).
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
