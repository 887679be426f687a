//! Progress bars on stderr (hidden with `--json` or when stderr is not a terminal).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Makes the bars of a run.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    hidden: bool,
}

/// A bar that follows a counter.
pub struct Tracker {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
    position: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl Progress {
    /// Bars shown unless `hidden`.
    pub fn new(hidden: bool) -> Progress {
        Progress { hidden }
    }

    /// A bar of `len` steps.
    pub fn bar(&self, prefix: &str, len: u64) -> ProgressBar {
        if self.hidden {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>32} [{bar:30}] {pos:>7}/{len:7} {per_sec:>12} {elapsed:>4} {msg}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(prefix.to_string());
        bar
    }

    /// A bar of `len` steps following `counter` (read every 100 ms, so the measured code
    /// pays nothing for it).
    pub fn track(&self, prefix: &str, len: u64, counter: Arc<AtomicU64>) -> Tracker {
        self.follow(prefix, len, move || counter.load(Ordering::Relaxed))
    }

    /// A bar of `len` steps showing what `position` says, read every 100 ms.
    pub fn follow<F>(&self, prefix: &str, len: u64, position: F) -> Tracker
    where
        F: Fn() -> u64 + Send + Sync + 'static,
    {
        let bar = self.bar(prefix, len);
        let position: Arc<dyn Fn() -> u64 + Send + Sync> = Arc::new(position);
        let ticker = {
            let bar = bar.clone();
            let position = position.clone();
            tokio::spawn(async move {
                loop {
                    bar.set_position(position());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        Tracker {
            bar,
            ticker,
            position,
        }
    }
}

impl Tracker {
    /// Stops following, leaving the bar at the counter's final value.
    pub fn finish(self) {
        self.ticker.abort();
        self.bar.set_position((self.position)());
        self.bar.finish();
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}
