//! The key layout: every key XQueue writes, under one prefix.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `{prefix}:stream:{queue}` | stream | a queue's messages; one consumer group per group name |
//! | `{prefix}:task:{id}` | hash | a task record (one field per [`xqueue_core::Task`] field, but the fixed ones packed in `spec`) |
//! | `{prefix}:status:{status}` | sorted set | task ids in a status; score: when it entered the status (`success`: only tasks recorded by versions before `succeeded`) |
//! | `{prefix}:succeeded` | list | ids of the tasks that succeeded, in the order recorded |
//! | `{prefix}:schedule` | sorted set | task ids waiting for their run time; score: when due |
//! | `{prefix}:limits` | hash | task type → concurrency limit |
//! | `{prefix}:permits:{type}` | hash | holder → permits of that type it holds |
//! | `{prefix}:holder:{holder}` | set | types a holder holds permits of |
//! | `{prefix}:holders` | sorted set | holder → lease expiry (server time, ms) |
//!
//! The state and limiter scripts build their keys from the prefix the same way
//! (`scripts/state_lib.lua`, `scripts/limiter_lib.lua`).

use xqueue_core::QueueName;

/// Builds keys under one prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    /// The prefix, as passed to scripts.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The stream of a queue.
    pub(crate) fn stream(&self, queue: &QueueName) -> String {
        format!("{}:stream:{}", self.prefix, queue.as_str())
    }

    /// A task record.
    pub(crate) fn task(&self, id: &str) -> String {
        format!("{}:task:{id}", self.prefix)
    }

    /// The marks of running attempts: task id → `started_at|worker` (see `state.rs`).
    pub(crate) fn running(&self) -> String {
        format!("{}:running", self.prefix)
    }

    /// The index of a status.
    pub(crate) fn status(&self, status: xqueue_core::TaskStatus) -> String {
        format!("{}:status:{}", self.prefix, status.as_str())
    }

    /// The tasks that succeeded, in the order recorded (see `scripts/state_lib.lua`).
    pub(crate) fn succeeded(&self) -> String {
        format!("{}:succeeded", self.prefix)
    }

    /// A token replaced whenever deliveries are taken over from their consumers
    /// (`reclaim.lua`) or cancelled tasks are purged (`state_purge.lua`): a snapshot fetched
    /// under an older token is not trusted (see `begin_attempts` in `start.rs`).
    pub(crate) fn guard(&self) -> String {
        format!("{}:guard", self.prefix)
    }

    /// Per stream, the entry id up to which no snapshot is trusted (`+`: none is), set when a
    /// group is created beside another or re-created (`ensure_groups.lua`; see `begin_attempts` in
    /// `start.rs`).
    pub(crate) fn snapshot_floors(&self) -> String {
        format!("{}:snapshot_floors", self.prefix)
    }

    /// The limits hash.
    pub(crate) fn limits(&self) -> String {
        format!("{}:limits", self.prefix)
    }
}
