//! The built-in task handlers, as in the Go version: `example` and `email` simulate work by
//! sleeping; `noop` returns at once (for benchmarks).
//!
//! Every built-in handler reads two optional payload fields:
//! - `duration_ms`: how long to "work" (capped at 10 minutes); defaults: `example` 1000,
//!   `email` 500, `noop` 0.
//! - `fail`: `"retry"` (or `true`) fails the attempt so that it is retried with backoff and
//!   dead-lettered once retries run out; `"fatal"` dead-letters it at once. For trying out
//!   retries and the dead-letter set.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use xqueue_core::{HandlerOptions, Task, TaskError, TaskHandler, TaskManager};

/// Longest simulated work.
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// Simulates `duration_ms` of work, then honours `fail`.
async fn simulate(task: &Task, default: Duration) -> Result<Duration, TaskError> {
    let duration = match task.payload.get("duration_ms") {
        None | Some(Value::Null) => default,
        Some(v) => Duration::from_millis(
            v.as_u64()
                .ok_or_else(|| TaskError::fatal("payload.duration_ms must be a whole number"))?,
        ),
    }
    .min(MAX_DURATION);
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
    match task.payload.get("fail") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(duration),
        Some(Value::String(s)) if s == "fatal" => Err(TaskError::fatal("asked to fail (fatal)")),
        Some(_) => Err(TaskError::retry("asked to fail (retry)")),
    }
}

/// `example`: sleeps (default 1 s) and echoes `payload.message`.
#[derive(Debug, Default)]
pub struct ExampleHandler;

#[async_trait]
impl TaskHandler for ExampleHandler {
    fn task_type(&self) -> &str {
        "example"
    }

    async fn handle(&self, task: &Task) -> Result<Value, TaskError> {
        let took = simulate(task, Duration::from_millis(1000)).await?;
        tracing::debug!(task_id = %task.id, task_type = "example", "example task processed");
        Ok(json!({
            "message": task.payload.get("message").cloned().unwrap_or(Value::Null),
            "duration_ms": took.as_millis() as u64,
        }))
    }
}

/// `email`: pretends to send `payload.subject` to `payload.to` (default 500 ms).
#[derive(Debug, Default)]
pub struct EmailHandler;

#[async_trait]
impl TaskHandler for EmailHandler {
    fn task_type(&self) -> &str {
        "email"
    }

    async fn handle(&self, task: &Task) -> Result<Value, TaskError> {
        let took = simulate(task, Duration::from_millis(500)).await?;
        let to = task.payload.get("to").cloned().unwrap_or(Value::Null);
        tracing::debug!(task_id = %task.id, task_type = "email", to = %to, "email sent (simulated)");
        Ok(json!({
            "sent_to": to,
            "subject": task.payload.get("subject").cloned().unwrap_or(Value::Null),
            "duration_ms": took.as_millis() as u64,
        }))
    }
}

/// `noop`: returns at once (unless `duration_ms` is given); no limit. For benchmarks.
#[derive(Debug, Default)]
pub struct NoopHandler;

#[async_trait]
impl TaskHandler for NoopHandler {
    fn task_type(&self) -> &str {
        "noop"
    }

    async fn handle(&self, task: &Task) -> Result<Value, TaskError> {
        simulate(task, Duration::ZERO).await?;
        Ok(Value::Null)
    }
}

/// Registers `example`, `email` and `noop`, each with its limit from `limits` (if any).
pub fn register_builtin(
    manager: &TaskManager,
    limits: &BTreeMap<String, u32>,
) -> xqueue_core::Result<()> {
    let handlers: [Arc<dyn TaskHandler>; 3] = [
        Arc::new(ExampleHandler),
        Arc::new(EmailHandler),
        Arc::new(NoopHandler),
    ];
    for handler in handlers {
        let options = HandlerOptions {
            max_concurrency: limits.get(handler.task_type()).copied(),
            ..HandlerOptions::default()
        };
        manager.register_handler_with(handler, options)?;
    }
    Ok(())
}
