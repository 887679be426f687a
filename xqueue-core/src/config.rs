//! [`ManagerConfig`]: every knob of the task manager and worker pool.

use std::time::Duration;

use rand::Rng;

/// Settings of a [`crate::TaskManager`]. `Default` gives the values documented per field.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// This instance's name: its consumer name in the group and its limiter holder id.
    /// Default: `xqueue-` and 8 random hex digits.
    pub instance_id: String,
    /// The consumer group every instance joins. Default `xqueue-workers`.
    pub group: String,
    /// Most tasks this instance runs at once. Default 10.
    pub workers: usize,
    /// Most tasks per type started ahead of a free worker. Their attempts begin in the state
    /// store while every worker is busy, so a worker that frees up runs the next task at once
    /// instead of waiting for that round trip. A type starts ahead only as many as its
    /// workers get through in about 1 ms at its recent mean run time (none while its runs
    /// take 1 ms or more, or before its first run ends), and only without a concurrency
    /// limit. Such a task is `processing` (and can no longer be cancelled) until a worker
    /// takes it: about that millisecond of run time, which for the quickest types (no-op
    /// handlers, where the cap applies) is as long as the pool takes to start `start_ahead`
    /// tasks. A shutdown gives ready tasks back as `pending`. 0 turns this off. Default 1000.
    pub start_ahead: usize,
    /// Whether a submit on this instance hands its tasks straight to this instance's idle
    /// workers, when the queue backend is also the state store (Redis). The submit's own
    /// round trip then delivers and begins them, and the handler starts as soon as it
    /// returns, instead of after the fetch and `begin` round trips an idle worker otherwise
    /// waits for. Only for types without a concurrency limit whose lane has nothing buffered
    /// here; other instances' workers take tasks as before. Default on.
    pub start_on_submit: bool,
    /// Most messages fetched per queue per call, and most tasks buffered per type. Every type
    /// may buffer 50 (less if this is less), and a quick type as many as this instance's
    /// workers get through in about 5 ms at its recent mean run time, up to this. A buffered
    /// delivery waits for this instance even while other instances' workers are idle, so a
    /// slow type keeps to 50; a backlog is ordered by priority within the buffer, so no type
    /// keeps to less. Default 500.
    pub batch_size: usize,
    /// How long a fetch waits for messages. Default 5 s.
    pub block_timeout: Duration,
    /// A delivery idle this long is taken over from its (presumably dead) consumer.
    /// Deliveries this instance holds are touched well within it. Default 30 s.
    pub claim_idle: Duration,
    /// A message delivered more often than this is dead-lettered without running (poison).
    /// Default 5.
    pub max_deliveries: u32,
    /// Backoff between attempts of a failing task.
    pub retry_backoff: Backoff,
    /// How often due delayed tasks and retries are queued. Default 100 ms.
    pub scheduler_interval: Duration,
    /// How long `success` and `cancelled` tasks are kept. Default 1 h.
    pub retention: Duration,
    /// How long dead-lettered (`failed`) tasks are kept. Default 7 days.
    pub failed_retention: Duration,
    /// How often finished tasks past their retention are removed. Default 30 s.
    pub retention_interval: Duration,
    /// How long a crashed instance's concurrency permits stay taken. Default 30 s.
    pub limiter_lease: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            instance_id: random_instance_id(),
            group: "xqueue-workers".into(),
            workers: 10,
            start_ahead: 1000,
            start_on_submit: true,
            batch_size: 500,
            block_timeout: Duration::from_secs(5),
            claim_idle: Duration::from_secs(30),
            max_deliveries: 5,
            retry_backoff: Backoff::default(),
            scheduler_interval: Duration::from_millis(100),
            retention: Duration::from_secs(3600),
            failed_retention: Duration::from_secs(7 * 24 * 3600),
            retention_interval: Duration::from_secs(30),
            limiter_lease: Duration::from_secs(30),
        }
    }
}

/// `xqueue-` and 8 random hex digits.
pub fn random_instance_id() -> String {
    format!("xqueue-{:08x}", rand::rng().random::<u32>())
}

/// Exponential backoff with full jitter: attempt `n` waits a random time in
/// `[base·2^(n-1) / 2, base·2^(n-1)]`, capped at `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Wait after the first failed attempt. Default 1 s.
    pub base: Duration,
    /// Longest wait. Default 10 min.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The wait after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let full = self
            .base
            .saturating_mul(1u32 << exp)
            .min(self.max)
            .as_millis() as u64;
        let half = full / 2;
        Duration::from_millis(half + rand::rng().random_range(0..=full - half))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for _ in 0..100 {
            let d1 = b.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = b.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            assert!(b.delay(40) <= Duration::from_secs(1));
        }
    }
}
