//! XQueue's core: the backend contract, the task model, the task manager and the worker pool.
//!
//! A deployment is three shared services, each a trait with a backend per broker:
//! - [`QueueBackend`]: queues with consumer-group semantics (publish, fetch, ack, nack,
//!   reclaim, introspect). Redis Streams and Kafka implement it in their own crates.
//! - [`StateStore`]: task records and status indexes, so any instance answers for any task.
//! - [`ConcurrencyLimiter`]: per-type limits that hold across every instance.
//!
//! [`Backends`] bundles the three; [`memory::backends`] gives the in-process reference
//! implementation. [`TaskManager`] holds all policy (validation, retries, scheduling,
//! dead-lettering, the worker pool) once, for every backend.

pub mod config;
pub mod error;
pub mod handler;
pub mod limiter;
mod maintenance;
pub mod manager;
pub mod memory;
mod pool;
pub mod queue;
pub mod state;
pub mod task;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::{Backoff, ManagerConfig};
pub use error::{Error, Result};
pub use handler::{HandlerOptions, TaskError, TaskHandler};
pub use limiter::ConcurrencyLimiter;
pub use manager::{QueueStats, ShutdownReport, Stats, TaskManager, WorkerStats};
pub use queue::{
    Capabilities, Consumer, ConsumerInfo, Delivery, FetchRequest, PartitionInfo, QueueBackend,
    QueueInfo, Receipt,
};
pub use state::{Begin, Completion, Outcome, StateStore, StatusCounts, Take, Taken};
pub use task::{
    now_millis, Band, Message, NewTask, QueueName, Task, TaskId, TaskStatus, UnixMillis,
};

use std::sync::Arc;

/// The three services a [`TaskManager`] runs on.
#[derive(Clone)]
pub struct Backends {
    /// The queues.
    pub queue: Arc<dyn QueueBackend>,
    /// Task state.
    pub state: Arc<dyn StateStore>,
    /// Per-type limits.
    pub limiter: Arc<dyn ConcurrencyLimiter>,
}

impl Backends {
    /// Whether the queue backend and the state store are one object (the same allocation),
    /// which lets the manager submit through [`StateStore::insert_published`].
    pub fn queue_is_state(&self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.queue), Arc::as_ptr(&self.state))
    }
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("queue", &self.queue.kind())
            .field("state", &self.state.kind())
            .field("limiter", &self.limiter.kind())
            .finish()
    }
}
