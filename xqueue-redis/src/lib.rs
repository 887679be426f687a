//! XQueue's Redis backend: queues on Redis Streams consumer groups, task state and per-type
//! concurrency limits, all in one Redis (6.2 or newer; 7.0+ recommended).
//!
//! ```no_run
//! # async fn demo() -> xqueue_core::Result<()> {
//! use xqueue_redis::{RedisBackend, RedisConfig};
//!
//! let backend = RedisBackend::connect(
//!     RedisConfig::new("redis://:secret@127.0.0.1:6379").key_prefix("xqueue"),
//! )
//! .await?;
//! let backends = backend.backends(); // queue, state and limiter for a TaskManager
//! # let _ = backends;
//! # Ok(())
//! # }
//! ```
//!
//! # Key layout
//! Every key starts with [`RedisConfig::key_prefix`] (`xqueue` by default):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:stream:{queue}` | stream | a queue's messages (`email.high`, …), one consumer group per group name |
//! | `{prefix}:task:{id}` | hash | a task record, one field per task field |
//! | `{prefix}:status:{status}` | sorted set | task ids per status, scored by when they entered it (finished: `finished_at`) |
//! | `{prefix}:running` | hash | task id → `started_at\|worker` of each attempt running |
//! | `{prefix}:guard` | string | a token replaced by every reclaim that takes deliveries over and every purge of cancelled tasks |
//! | `{prefix}:snapshot_floors` | hash | stream → the entry id up to which no snapshot is trusted, set when a group is created beside another or re-created |
//! | `{prefix}:schedule` | sorted set | delayed tasks, retries and publish guards by due time |
//! | `{prefix}:limits` | hash | task type → concurrency limit |
//! | `{prefix}:permits:{type}`, `{prefix}:holder:{holder}`, `{prefix}:holders` | hash, set, sorted set | permits held, per holder, with lease expiry |
//!
//! # Behavior
//! - **Publish** is one script call per batch: it trims what every group has acked and adds
//!   the batch (XADD) only if the most undelivered + pending entries of any group stays within
//!   [`RedisConfig::max_len`]; otherwise nothing is added and it fails with
//!   [`xqueue_core::Error::QueueFull`]. Entries are trimmed (`XTRIM MINID ~`) only below every
//!   group's oldest pending and last delivered entry: a message is never trimmed while it is
//!   undelivered or pending.
//! - **Fetch** is `XREADGROUP … COUNT n BLOCK ms STREAMS q1 q2 … > > …`. A blocking fetch runs
//!   on a dedicated connection (pooled) that may answer for the block time plus
//!   [`RedisConfig::response_timeout`]. Groups are created on first use at id `0`, so messages
//!   published before the first fetch are delivered; a group Redis lost (NOGROUP: a restart
//!   without persistence, a deleted key) is re-created and the call retried once.
//! - **Ack** is pipelined XACK; **nack** re-adds the entry at the end of its stream and acks
//!   the original in one script, carrying the delivery count over; **reclaim** is XAUTOCLAIM
//!   with the delivery count read from the pending list; **touch** is `XCLAIM … JUSTID` to the
//!   same consumer (resets idle time, keeps the count); **leave** removes the consumer from its
//!   groups only where it holds nothing pending (DELCONSUMER would discard pending entries).
//! - Connection failures, timeouts and a restarting server are
//!   [`xqueue_core::Error::Unavailable`] (retryable); the shared connection reconnects with
//!   backoff by itself, and blocking connections are replaced. No acknowledged publish is lost
//!   while Redis persists its data (`appendonly yes`; `appendfsync always` for no loss at all).
//! - Task state changes (`complete`, `claim_due`, `cancel`, …) are one Lua script per batch,
//!   atomic: two instances never start or claim the same task. Starting attempts (`begin`) is
//!   one pipeline of native commands: each task is marked running before its record is read
//!   (or, for a first delivery whose entry carries its record, before the batch's cancels
//!   and the guard token are checked), so a cancel is either seen or refused.
//! - Limits are exact across instances: `acquire` runs as one script that first drops the
//!   permits of holders whose lease (server time) has passed.
//! - Redis Cluster is not supported (scripts touch keys they compute from the prefix).

mod backend;
mod codec;
mod config;
mod conn;
mod entries;
mod error;
mod groups;
mod keys;
mod limiter;
mod reply;
mod running;
mod scripts;
mod snapshot;
mod start;
mod state;

pub use backend::RedisBackend;
pub use config::RedisConfig;
