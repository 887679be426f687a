//! User code: the handler that runs tasks of one type.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::task::Task;

/// Runs tasks of one type.
///
/// ```
/// use async_trait::async_trait;
/// use serde_json::{json, Value};
/// use xqueue_core::{Task, TaskError, TaskHandler};
///
/// struct Resize;
///
/// #[async_trait]
/// impl TaskHandler for Resize {
///     fn task_type(&self) -> &str {
///         "resize"
///     }
///
///     async fn handle(&self, task: &Task) -> Result<Value, TaskError> {
///         let width = task.payload["width"]
///             .as_u64()
///             .ok_or_else(|| TaskError::fatal("payload.width must be a number"))?;
///         Ok(json!({ "resized_to": width }))
///     }
/// }
/// ```
#[async_trait]
pub trait TaskHandler: Send + Sync + 'static {
    /// The task type this handler runs.
    fn task_type(&self) -> &str;

    /// Runs one attempt of `task`.
    ///
    /// # Behavior
    /// - `Ok(value)` marks the task `success` and stores `value` as its result (`Null` for none).
    /// - `Err(TaskError::retry(..))` (and any `?`-converted error) schedules a retry with
    ///   backoff while retries remain; after that the task is dead-lettered.
    /// - `Err(TaskError::fatal(..))` dead-letters the task at once.
    /// - A panic counts as a retryable failure; the worker survives it.
    /// - Past its timeout the future is dropped and the attempt counts as a retryable failure.
    async fn handle(&self, task: &Task) -> Result<Value, TaskError>;
}

/// Why an attempt failed, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    message: String,
    retryable: bool,
}

impl TaskError {
    /// A failure worth retrying (the default for converted errors).
    pub fn retry(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that retrying cannot fix: the task is dead-lettered at once.
    pub fn fatal(message: impl Into<String>) -> Self {
        TaskError {
            message: message.into(),
            retryable: false,
        }
    }

    /// Whether the task may be retried.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// The error message stored as the task's `last_error`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(e: E) -> Self {
        TaskError::retry(e.to_string())
    }
}

/// Per-type settings given with [`crate::TaskManager::register_handler_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandlerOptions {
    /// Most tasks of this type running at once across every instance; `None` for no limit.
    pub max_concurrency: Option<u32>,
    /// Retries after a failed first attempt, for tasks submitted without their own.
    pub max_retries: u32,
    /// Per-attempt time limit, for tasks submitted without their own; `None` for none.
    pub timeout: Option<Duration>,
}

impl Default for HandlerOptions {
    fn default() -> Self {
        HandlerOptions {
            max_concurrency: None,
            max_retries: 3,
            timeout: Some(Duration::from_secs(300)),
        }
    }
}
