//! The in-memory backend: the reference implementation of the contract and the server's
//! default. Nothing survives the process; nothing is shared with other processes.

mod limiter;
mod queue;
mod state;

use std::sync::Arc;

pub use limiter::{MemoryLimiter, DEFAULT_LEASE};
pub use queue::{MemoryQueue, DEFAULT_MAX_LEN};
pub use state::MemoryStateStore;

use crate::Backends;

/// A fresh in-memory queue, state store and limiter.
pub fn backends() -> Backends {
    Backends {
        queue: Arc::new(MemoryQueue::default()),
        state: Arc::new(MemoryStateStore::new()),
        limiter: Arc::new(MemoryLimiter::new()),
    }
}
