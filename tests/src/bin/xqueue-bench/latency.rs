//! Latency on a monotonic clock shared by the submitter and the handler (same process).

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since this process's benchmark epoch (monotonic).
pub fn now_ns() -> u64 {
    EPOCH.elapsed().as_nanos() as u64
}

/// Runs one submission of an idle measurement in a task on the runtime, as a service submits
/// from its request handlers (the steady-rate measurements spawn theirs too), and waits for
/// it. The thread the bench's own loops run on (`block_on`'s) is not one of the runtime's
/// workers: a request sent from it, and its answer, would each cross threads and wake a parked
/// one (measured on an idle pool: submit→start p50 0.60–0.66 ms from that thread, 0.47–0.51
/// ms from a task). `fut` takes its own start time, so the hand-over to the task is not
/// counted.
pub async fn in_a_task<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> crate::Result<T> {
    Ok(tokio::spawn(fut).await?)
}

/// A payload of about 100 bytes, like the raw baseline's entries.
pub fn payload(seq: u64, sent_ns: Option<u64>) -> Value {
    let mut v = json!({ "seq": seq, "pad": "x".repeat(64) });
    if let Some(ns) = sent_ns {
        v["sent_ns"] = json!(ns);
    }
    v
}

/// The send time a payload carries, if any.
pub fn sent_ns(payload: &Value) -> Option<u64> {
    payload.get("sent_ns").and_then(Value::as_u64)
}

/// Percentiles of a latency distribution, in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencySummary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// A thread-safe histogram of nanosecond latencies.
pub struct Recorder {
    hist: Mutex<Histogram<u64>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            // 1 ns to 10 min, 3 significant digits.
            hist: Mutex::new(
                Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("valid bounds"),
            ),
        }
    }
}

impl Recorder {
    /// Records one latency.
    pub fn record(&self, ns: u64) {
        let mut h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(ns.max(1));
    }

    /// Forgets every sample.
    pub fn reset(&self) {
        self.hist.lock().unwrap_or_else(|e| e.into_inner()).reset();
    }

    /// The percentiles so far.
    pub fn summary(&self) -> LatencySummary {
        let h = self.hist.lock().unwrap_or_else(|e| e.into_inner());
        if h.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
        }
    }
}

/// What the code under test reports when a task starts: a counter, the first start, and the
/// submit→start latencies of tasks sent after the warm-up.
pub struct Probe {
    /// Tasks started.
    pub started: std::sync::atomic::AtomicU64,
    /// When the first task started (ns since the epoch; 0 before).
    pub first_ns: std::sync::atomic::AtomicU64,
    /// Submit→start latencies.
    pub recorder: Recorder,
    record_from_ns: std::sync::atomic::AtomicU64,
    /// Woken when `started` reaches `wake_at`.
    notify: tokio::sync::Notify,
    /// The count [`Probe::wait_for`] waits for (`u64::MAX`: none). A waiter woken at every
    /// start would cost each run a wake-up of the waiting thread (measured: ~20,000 a second
    /// during processing), which the raw baseline's polling does not pay.
    wake_at: std::sync::atomic::AtomicU64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            started: Default::default(),
            first_ns: Default::default(),
            recorder: Recorder::default(),
            record_from_ns: std::sync::atomic::AtomicU64::new(u64::MAX),
            notify: tokio::sync::Notify::new(),
            wake_at: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }
}

impl Probe {
    /// A task started now; `sent_ns` is when it was submitted, if it says.
    pub fn observe(&self, sent_ns: Option<u64>) {
        use std::sync::atomic::Ordering::{Relaxed, SeqCst};
        let now = now_ns();
        if let Some(sent) = sent_ns {
            if sent >= self.record_from_ns.load(Relaxed) {
                self.recorder.record(now.saturating_sub(sent));
            }
        }
        let _ = self.first_ns.compare_exchange(0, now, Relaxed, Relaxed);
        // SeqCst pairs with `wait_for`'s store then load: one of the two sees the other.
        let started = self.started.fetch_add(1, SeqCst) + 1;
        if started >= self.wake_at.load(SeqCst) {
            self.notify.notify_waiters();
        }
    }

    /// Records latencies of tasks sent from `ns` on (and forgets earlier samples).
    pub fn record_from(&self, ns: u64) {
        self.recorder.reset();
        self.record_from_ns
            .store(ns, std::sync::atomic::Ordering::Relaxed);
    }

    /// Tasks started so far.
    pub fn count(&self) -> u64 {
        self.started.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until `n` tasks have started; false on timeout. One waiter at a time.
    pub async fn wait_for(&self, n: u64, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        self.wake_at.store(n, std::sync::atomic::Ordering::SeqCst);
        loop {
            let woken = self.notify.notified();
            if self.count() >= n {
                return true;
            }
            // Also poll: a wake-up between the check and the wait is not lost, but be safe.
            let tick = tokio::time::sleep(std::time::Duration::from_millis(5));
            tokio::select! {
                _ = woken => {}
                _ = tick => {}
                _ = tokio::time::sleep_until(deadline) => return self.count() >= n,
            }
        }
    }
}

/// The result of a steady-rate run.
pub struct SteadyRun {
    /// Submit→start, after the warm-up.
    pub latency: LatencySummary,
    /// How long the submit call itself took (after the warm-up).
    pub submit_call: LatencySummary,
    /// Submissions made.
    pub sent: u64,
    /// Submissions that failed.
    pub errors: u64,
    /// Submitted tasks that had not started 10 s after the last submission.
    pub missing: u64,
}

impl SteadyRun {
    /// A note for the table.
    pub fn note(&self, rate: u32) -> String {
        format!(
            "{rate}/s open loop; submit call p50 {} p99 {}; sent {}, errors {}, not started {}",
            crate::report::ms(self.submit_call.p50_us),
            crate::report::ms(self.submit_call.p99_us),
            self.sent,
            self.errors,
            self.missing
        )
    }
}

/// Submits at a steady `rate` for `secs` (open loop: each submission is its own task, so a
/// slow one does not hold back the next), then waits for the tasks to start.
///
/// `send(seq, sent_ns)` submits one task carrying `sent_ns`; it returns whether the
/// submission succeeded. Latencies of tasks sent in the first `warmup` seconds are dropped.
pub async fn steady<F, Fut>(
    probe: &Probe,
    rate: u32,
    secs: f64,
    warmup: f64,
    bar: &indicatif::ProgressBar,
    mut send: F,
) -> SteadyRun
where
    F: FnMut(u64, u64) -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    use std::time::Duration;

    let base = probe.count();
    let start = tokio::time::Instant::now();
    let start_ns = now_ns();
    let warm_ns = start_ns + (warmup * 1e9) as u64;
    probe.record_from(warm_ns);
    let calls = Arc::new(Recorder::default());
    let errors = Arc::new(AtomicU64::new(0));
    let total = (secs * rate as f64) as u64;
    let mut sent = 0u64;
    while sent < total {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64 + 1).min(total);
        while sent < due {
            let sent_ns = now_ns();
            let fut = send(sent, sent_ns);
            let calls = calls.clone();
            let errors = errors.clone();
            tokio::spawn(async move {
                let ok = fut.await;
                let done = now_ns();
                if !ok {
                    errors.fetch_add(1, Relaxed);
                } else if sent_ns >= warm_ns {
                    calls.record(done - sent_ns);
                }
            });
            sent += 1;
        }
        bar.set_position(sent);
        let next = start + Duration::from_secs_f64(sent as f64 / rate as f64);
        tokio::time::sleep_until(next).await;
    }
    // Every submission has returned once `errors + started` covers them all, or the wait
    // times out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let done = probe.count() - base + errors.load(Relaxed);
        if done >= sent || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let errors = errors.load(Relaxed);
    let started = probe.count() - base;
    bar.finish();
    SteadyRun {
        latency: probe.recorder.summary(),
        submit_call: calls.summary(),
        sent,
        errors,
        missing: sent.saturating_sub(started + errors),
    }
}
