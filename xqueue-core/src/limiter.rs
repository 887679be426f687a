//! Per-type concurrency limits that hold across every instance.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// A counting semaphore per task type, shared by every instance of a deployment.
///
/// # Contract
/// - The permits held for a type, summed over every holder, never exceed its limit: `acquire`
///   grants `min(want, limit - held)` atomically. A type without a limit grants every request.
/// - Lowering a limit below what is held grants nothing more until enough are released; held
///   permits are not revoked.
/// - A holder's permits are leased: a holder that stops calling `refresh` (a crashed instance)
///   loses them once the lease passes, so a dead instance cannot hold a type hostage. A holder's
///   first `acquire` starts a lease of the backend's default length (30 s for the built-in
///   backends); the task manager refreshes it with its own `limiter_lease` from then on.
/// - Limits are shared: `set_limit` on one instance is seen by `acquire` on all.
#[async_trait]
pub trait ConcurrencyLimiter: Send + Sync + 'static {
    /// The limiter's kind: `"memory"`, `"redis"`.
    fn kind(&self) -> &'static str;

    /// Sets the limit of `task_type` (at least 1).
    async fn set_limit(&self, task_type: &str, limit: u32) -> Result<()>;

    /// Removes the limit of `task_type`.
    async fn clear_limit(&self, task_type: &str) -> Result<()>;

    /// Every limit that is set.
    async fn limits(&self) -> Result<BTreeMap<String, u32>>;

    /// Takes up to `want` permits of `task_type` for `holder`; returns how many it got.
    async fn acquire(&self, task_type: &str, holder: &str, want: u32) -> Result<u32>;

    /// Gives back `count` permits of `task_type` held by `holder`.
    async fn release(&self, task_type: &str, holder: &str, count: u32) -> Result<()>;

    /// Extends `holder`'s lease on every permit it holds to `lease` from now.
    async fn refresh(&self, holder: &str, lease: Duration) -> Result<()>;

    /// Permits of `task_type` held now, by every holder.
    async fn in_use(&self, task_type: &str) -> Result<u32>;
}
