//! Progress of a long run: a bar on a terminal, a plain line every second otherwise (CI logs and
//! redirected output should not fill with carriage returns), nothing when quiet.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

/// Where progress goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A bar when stderr is a terminal, plain lines when it is not.
    Auto,
    /// No progress output (tests, nested runs).
    Quiet,
}

/// Counters the workers bump and the reporter reads.
#[derive(Clone, Default)]
pub struct Counters {
    /// Requests finished (either way).
    pub done: Arc<AtomicUsize>,
    /// Requests that failed.
    pub failed: Arc<AtomicUsize>,
}

/// A running reporter; [`Reporter::finish`] stops it and clears the bar.
pub struct Reporter {
    task: Option<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl Reporter {
    /// Starts reporting `counters` against `total` under `label`.
    pub fn start(mode: Mode, label: &str, total: usize, counters: &Counters) -> Reporter {
        if mode == Mode::Quiet {
            return Reporter {
                task: None,
                bar: None,
            };
        }
        let c = counters.clone();
        if std::io::stderr().is_terminal() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>12} [{bar:40.cyan/blue}] {pos}/{len} {per_sec:>12} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            let b = bar.clone();
            let task = tokio::spawn(async move {
                loop {
                    b.set_position(c.done.load(Ordering::Relaxed) as u64);
                    b.set_message(format!("{} failed", c.failed.load(Ordering::Relaxed)));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            return Reporter {
                task: Some(task),
                bar: Some(bar),
            };
        }
        let label = label.to_owned();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = c.done.load(Ordering::Relaxed);
                eprintln!(
                    "{label}: {done}/{total} ({:.0} %), {} failed, {:.0} req/s",
                    100.0 * done as f64 / total.max(1) as f64,
                    c.failed.load(Ordering::Relaxed),
                    done as f64 / start.elapsed().as_secs_f64()
                );
            }
        });
        Reporter {
            task: Some(task),
            bar: None,
        }
    }

    /// Stops the reporter and removes the bar from the terminal.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop();
    }
}
