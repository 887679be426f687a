//! Tasks on the wire: submit, get, list, cancel, dead letters.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use xqueue_core::manager::{MAX_DELAY, MAX_RETRIES, MAX_TIMEOUT};
use xqueue_core::task::{validate_priority, validate_task_type};
use xqueue_core::{NewTask, Task, TaskId};

use super::{parse_rfc3339, rfc3339};
use crate::error::AppError;

/// Most tasks one batch submit may carry.
pub const MAX_BATCH: usize = 1000;

/// `POST /api/v1/tasks`: a task to run. Unknown fields are rejected (a typo such as
/// `delay_sm` answers 400 instead of being ignored).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitTaskRequest {
    /// The task type; a handler must be registered for it. 1–64 of `A-Z a-z 0-9 _ -`.
    #[serde(rename = "type")]
    #[schema(example = "example")]
    pub task_type: String,
    /// Any JSON value, handed to the handler as is. Default `{}`.
    #[serde(default)]
    #[schema(value_type = Object, example = json!({"message": "Hello XQueue!"}))]
    pub payload: Option<Value>,
    /// 0 (lowest) to 9 (highest); default 5.
    #[schema(minimum = 0, maximum = 9, example = 1)]
    pub priority: Option<i64>,
    /// Retries after a failed first attempt (0–100); default: the type's setting (3).
    #[schema(maximum = 100)]
    pub max_retries: Option<u32>,
    /// Per-attempt time limit in milliseconds; default: the type's setting (5 min).
    #[schema(minimum = 1)]
    pub timeout_ms: Option<u64>,
    /// Run no earlier than this many milliseconds from now. Exclusive with `run_at`.
    pub delay_ms: Option<u64>,
    /// Run no earlier than this time, an RFC 3339 timestamp (e.g. `2025-01-31T12:00:00Z`).
    /// Exclusive with `delay_ms`.
    #[schema(format = DateTime)]
    pub run_at: Option<String>,
}

impl SubmitTaskRequest {
    /// The core's request; the core validates the rest (type, handler, ranges).
    ///
    /// The checks that do not need the manager run here too, so that a batch can name the
    /// task at fault.
    pub fn into_new_task(self) -> Result<NewTask, AppError> {
        validate_task_type(&self.task_type)?;
        if let Some(n) = self.max_retries.filter(|n| *n > MAX_RETRIES) {
            return Err(AppError::invalid(
                "max_retries",
                format!("invalid max_retries: {n} is above {MAX_RETRIES}"),
            ));
        }
        let mut task = NewTask::new(
            self.task_type,
            self.payload
                .unwrap_or_else(|| Value::Object(Default::default())),
        );
        if let Some(p) = self.priority {
            let p = u8::try_from(p).map_err(|_| {
                AppError::invalid(
                    "priority",
                    format!("invalid priority: {p} is out of range 0..=9"),
                )
            })?;
            validate_priority(p)?;
            task = task.priority(p);
        }
        task.max_retries = self.max_retries;
        if let Some(ms) = self.timeout_ms {
            if ms == 0 || ms > MAX_TIMEOUT.as_millis() as u64 {
                return Err(AppError::invalid(
                    "timeout_ms",
                    format!(
                        "invalid timeout_ms: {ms} is out of range 1..={}",
                        MAX_TIMEOUT.as_millis()
                    ),
                ));
            }
            task = task.timeout(Duration::from_millis(ms));
        }
        if let Some(ms) = self.delay_ms {
            if ms > MAX_DELAY.as_millis() as u64 {
                return Err(AppError::invalid(
                    "delay_ms",
                    format!("invalid delay_ms: {ms} is more than a year"),
                ));
            }
            task = task.delay(Duration::from_millis(ms));
        }
        if let Some(at) = &self.run_at {
            task = task.run_at(parse_rfc3339("run_at", at)?);
        }
        Ok(task)
    }
}

/// A task as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskResponse {
    /// The task's id (a UUID).
    #[schema(example = "01936f3e-8f6a-7c3b-9d2e-1a2b3c4d5e6f")]
    pub id: String,
    /// The task type.
    #[serde(rename = "type")]
    #[schema(example = "example")]
    pub task_type: String,
    /// The payload as submitted.
    #[schema(value_type = Object)]
    pub payload: Value,
    /// 0 (lowest) to 9 (highest).
    pub priority: u8,
    /// `pending`, `scheduled`, `processing`, `retrying`, `success`, `failed` (dead-lettered)
    /// or `cancelled`.
    #[schema(example = "pending")]
    pub status: String,
    /// Attempts started so far.
    pub attempts: u32,
    /// Retries allowed after the first attempt.
    pub max_retries: u32,
    /// Per-attempt time limit in ms, when the task set its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// When it was submitted.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When it becomes runnable (delayed tasks and retries).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub run_at: Option<String>,
    /// When the latest attempt started.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    /// When it finished (success, failed, cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// The error of the latest failed attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the handler returned, once it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub result: Option<Value>,
    /// The instance (consumer) that ran the latest attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl From<Task> for TaskResponse {
    fn from(t: Task) -> Self {
        TaskResponse {
            id: t.id.to_string(),
            task_type: t.task_type,
            payload: t.payload,
            priority: t.priority,
            status: t.status.as_str().to_string(),
            attempts: t.attempts,
            max_retries: t.max_retries,
            timeout_ms: t.timeout_ms,
            created_at: rfc3339(t.created_at),
            run_at: t.run_at.map(rfc3339),
            started_at: t.started_at.map(rfc3339),
            finished_at: t.finished_at.map(rfc3339),
            error: t.last_error,
            result: t.result,
            worker: t.worker,
        }
    }
}

/// `POST /api/v1/tasks` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubmitTaskResponse {
    /// The new task's id.
    pub task_id: String,
    /// `pending`, or `scheduled` for a delayed task.
    pub status: String,
    /// The whole task.
    pub task: TaskResponse,
}

impl From<Task> for SubmitTaskResponse {
    fn from(t: Task) -> Self {
        SubmitTaskResponse {
            task_id: t.id.to_string(),
            status: t.status.as_str().to_string(),
            task: t.into(),
        }
    }
}

/// `POST /api/v1/tasks/batch` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchSubmitResponse {
    /// The new tasks' ids, in request order.
    pub task_ids: Vec<String>,
    /// How many.
    pub count: usize,
    /// The tasks, in request order.
    pub tasks: Vec<TaskResponse>,
}

impl From<Vec<Task>> for BatchSubmitResponse {
    fn from(tasks: Vec<Task>) -> Self {
        BatchSubmitResponse {
            task_ids: tasks.iter().map(|t| t.id.to_string()).collect(),
            count: tasks.len(),
            tasks: tasks.into_iter().map(Into::into).collect(),
        }
    }
}

/// `GET /api/v1/tasks` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListTasksQuery {
    /// Status to list: pending, scheduled, processing, retrying, success, failed, cancelled.
    /// Default `pending`.
    pub status: Option<String>,
    /// How many, 1..=1000. Default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// `GET /api/v1/dead-letters` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// How many, 1..=1000. Default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// Default page size of list endpoints.
pub const DEFAULT_LIMIT: usize = 100;

/// Parses a `limit` parameter (range checked by the core).
pub fn parse_limit(limit: Option<&str>) -> Result<usize, AppError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(s) => s.trim().parse::<usize>().map_err(|_| {
            AppError::invalid(
                "limit",
                format!("invalid limit: {s:?} is not a whole number between 1 and 1000"),
            )
        }),
    }
}

/// A list of tasks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskListResponse {
    /// The tasks, oldest first.
    pub tasks: Vec<TaskResponse>,
    /// How many were returned.
    pub count: usize,
    /// The status listed.
    pub status: String,
    /// The limit applied.
    pub limit: usize,
}

/// `POST /api/v1/dead-letters/requeue` and `DELETE /api/v1/dead-letters`: which dead letters.
/// Give either `task_ids` (non-empty) or `"all": true`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSelection {
    /// The dead-lettered tasks to act on.
    pub task_ids: Option<Vec<String>>,
    /// Act on every dead-lettered task.
    pub all: Option<bool>,
}

impl DeadLetterSelection {
    /// `None` for all, or the parsed ids.
    pub fn into_ids(self) -> Result<Option<Vec<TaskId>>, AppError> {
        match (self.task_ids, self.all) {
            (Some(_), Some(true)) => Err(AppError::invalid(
                "all",
                "give either task_ids or \"all\": true, not both",
            )),
            (None, Some(true)) => Ok(None),
            (Some(ids), _) if ids.is_empty() => Err(AppError::invalid(
                "task_ids",
                "task_ids must not be empty (use \"all\": true for every dead letter)",
            )),
            (Some(ids), _) => ids
                .iter()
                .map(|s| s.parse::<TaskId>().map_err(AppError::from))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            (None, _) => Err(AppError::invalid(
                "task_ids",
                "give task_ids (a list of task ids) or \"all\": true",
            )),
        }
    }
}

/// `POST /api/v1/dead-letters/requeue` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequeueResponse {
    /// Dead letters moved back to the queue (ids that were not dead-lettered are skipped).
    pub requeued: u64,
}

/// `DELETE /api/v1/dead-letters` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeResponse {
    /// Dead letters deleted (ids that were not dead-lettered are skipped).
    pub purged: u64,
}

/// `POST /api/v1/concurrency`: set a type's limit across every instance.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetConcurrencyRequest {
    /// The task type.
    #[schema(example = "example")]
    pub task_type: String,
    /// Most tasks of the type running at once, across every instance (at least 1).
    #[schema(minimum = 1, example = 3)]
    pub max_concurrency: i64,
}

impl SetConcurrencyRequest {
    /// The limit, checked to be at least 1.
    pub fn limit(&self) -> Result<u32, AppError> {
        u32::try_from(self.max_concurrency)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                AppError::invalid(
                    "max_concurrency",
                    format!(
                        "invalid max_concurrency: {} must be at least 1",
                        self.max_concurrency
                    ),
                )
            })
    }
}

/// `POST /api/v1/concurrency` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetConcurrencyResponse {
    /// The task type.
    pub task_type: String,
    /// Its new limit.
    pub max_concurrency: u32,
}

/// `GET /api/v1/concurrency` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConcurrencyResponse {
    /// Task type → limit, for every type with a limit.
    #[schema(example = json!({"email": 5, "example": 3}))]
    pub concurrency_limits: BTreeMap<String, u32>,
}
