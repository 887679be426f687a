//! The one error type of XQueue's public API.

use std::time::Duration;

use crate::task::TaskStatus;

/// Result alias used across XQueue.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in XQueue, for every backend.
///
/// Driver errors (redis, rdkafka) never appear here: each backend crate maps them in its
/// `error.rs` into [`Error::Unavailable`] (connection-level, worth retrying) or
/// [`Error::Backend`] (the broker refused).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Caller input is invalid; `field` names what is wrong.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field or parameter.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// No handler is registered for this task type.
    #[error("no handler is registered for task type {0:?}")]
    UnknownTaskType(String),
    /// The task (or other object) does not exist.
    #[error("{what} {id:?} not found")]
    NotFound {
        /// What kind of object was looked up ("task", "delivery", …).
        what: &'static str,
        /// Its identifier.
        id: String,
    },
    /// The operation does not apply to the object in its current state.
    #[error("task {id} is {status}: {reason}")]
    Conflict {
        /// The task id.
        id: String,
        /// The status that prevents the operation.
        status: TaskStatus,
        /// What was refused.
        reason: String,
    },
    /// The queue holds as many undelivered and pending messages as it may.
    #[error("queue {queue:?} is full ({limit} messages waiting); retry later")]
    QueueFull {
        /// The queue that is full.
        queue: String,
        /// Its configured maximum.
        limit: u64,
    },
    /// The backend does not support this operation (see [`crate::Capabilities`]).
    #[error("the {backend} backend does not support {operation}")]
    Unsupported {
        /// Backend kind.
        backend: &'static str,
        /// The missing operation.
        operation: &'static str,
    },
    /// The backend cannot be reached right now (connection lost, timeout, broker restarting).
    #[error("{backend} backend unavailable: {message}")]
    Unavailable {
        /// Backend kind.
        backend: &'static str,
        /// What the driver said.
        message: String,
    },
    /// The backend answered with an error that retrying will not fix.
    #[error("{backend} backend error: {message}")]
    Backend {
        /// Backend kind.
        backend: &'static str,
        /// What the driver said.
        message: String,
    },
    /// Stored data could not be decoded.
    #[error("corrupt data for {what}: {message}")]
    Codec {
        /// What was being decoded.
        what: String,
        /// Decoder message.
        message: String,
    },
    /// The task manager is shutting down and accepts no new work.
    #[error("the task manager is shutting down")]
    ShuttingDown,
    /// An operation did not finish in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

impl Error {
    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// Shorthand for a missing task.
    pub fn task_not_found(id: impl ToString) -> Self {
        Error::NotFound {
            what: "task",
            id: id.to_string(),
        }
    }

    /// Whether the same call may succeed later without any change by the caller.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable { .. } | Error::Timeout(_) | Error::QueueFull { .. }
        )
    }
}
