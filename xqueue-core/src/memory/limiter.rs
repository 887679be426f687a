//! [`MemoryLimiter`]: per-type limits inside the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::limiter::ConcurrencyLimiter;

/// Lease a holder gets on its first permit, before it ever calls `refresh`.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Counting semaphores per task type, held in this process.
///
/// # Behavior
/// - Implements the whole [`ConcurrencyLimiter`] contract, leases included.
/// - Exact for every task manager that shares this value (e.g. through one `Arc`).
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    limits: BTreeMap<String, u32>,
    /// task type → holder → permits held.
    held: HashMap<String, HashMap<String, u32>>,
    leases: HashMap<String, Instant>,
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        let dead: Vec<String> = self
            .leases
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(h, _)| h.clone())
            .collect();
        for h in dead {
            self.leases.remove(&h);
            for holders in self.held.values_mut() {
                holders.remove(&h);
            }
        }
    }

    fn held(&self, task_type: &str) -> u32 {
        self.held
            .get(task_type)
            .map(|h| h.values().sum())
            .unwrap_or(0)
    }
}

impl MemoryLimiter {
    /// A limiter with no limits set.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ConcurrencyLimiter for MemoryLimiter {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn set_limit(&self, task_type: &str, limit: u32) -> Result<()> {
        if limit == 0 {
            return Err(Error::invalid("max_concurrency", "must be at least 1"));
        }
        self.lock().limits.insert(task_type.to_owned(), limit);
        Ok(())
    }

    async fn clear_limit(&self, task_type: &str) -> Result<()> {
        self.lock().limits.remove(task_type);
        Ok(())
    }

    async fn limits(&self) -> Result<BTreeMap<String, u32>> {
        Ok(self.lock().limits.clone())
    }

    async fn acquire(&self, task_type: &str, holder: &str, want: u32) -> Result<u32> {
        let mut s = self.lock();
        let now = Instant::now();
        s.expire(now);
        let granted = match s.limits.get(task_type) {
            Some(&limit) => want.min(limit.saturating_sub(s.held(task_type))),
            None => want,
        };
        if granted > 0 {
            *s.held
                .entry(task_type.to_owned())
                .or_default()
                .entry(holder.to_owned())
                .or_default() += granted;
            s.leases
                .entry(holder.to_owned())
                .or_insert(now + DEFAULT_LEASE);
        }
        Ok(granted)
    }

    async fn release(&self, task_type: &str, holder: &str, count: u32) -> Result<()> {
        let mut s = self.lock();
        if let Some(holders) = s.held.get_mut(task_type) {
            if let Some(n) = holders.get_mut(holder) {
                *n = n.saturating_sub(count);
                if *n == 0 {
                    holders.remove(holder);
                }
            }
        }
        Ok(())
    }

    async fn refresh(&self, holder: &str, lease: Duration) -> Result<()> {
        self.lock()
            .leases
            .insert(holder.to_owned(), Instant::now() + lease);
        Ok(())
    }

    async fn in_use(&self, task_type: &str) -> Result<u32> {
        let mut s = self.lock();
        s.expire(Instant::now());
        Ok(s.held(task_type))
    }
}
