//! The task model: what a client submits and what XQueue tracks about it.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch, the unit of every timestamp XQueue stores.
pub type UnixMillis = u64;

/// The current time in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Highest accepted priority. Priorities run from 0 (lowest) to 9 (highest).
pub const MAX_PRIORITY: u8 = 9;
/// Priority given to a task submitted without one.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Longest accepted task type name.
pub const MAX_TASK_TYPE_LEN: usize = 64;

/// A task's unique id: a UUID (version 7, so ids sort by creation time).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(String);

impl TaskId {
    /// A new, unique id.
    pub fn generate() -> Self {
        TaskId(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TaskId {
    type Err = Error;

    /// Parses an id; anything that is not a UUID is [`Error::InvalidInput`].
    fn from_str(s: &str) -> Result<Self> {
        uuid::Uuid::try_parse(s)
            .map(|u| TaskId(u.hyphenated().to_string()))
            .map_err(|_| Error::invalid("task_id", format!("{s:?} is not a task id (a UUID)")))
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a task is in its lifecycle.
///
/// ```text
/// scheduled ──due──▶ pending ──fetched──▶ processing ──ok──▶ success
///     ▲                 ▲                     │
///     │                 │                     ├─error, attempts left──▶ retrying ──due──▶ pending
///     └─ requeue ◀──────┴───────── failed ◀───┴─error, no attempts left / fatal / poison
/// pending | scheduled | retrying ──cancel──▶ cancelled
/// ```
/// `failed` tasks form the dead-letter set: they can be listed, re-run and purged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// On the queue, waiting for a worker.
    Pending,
    /// Waiting for its `run_at` time before it is queued.
    Scheduled,
    /// A handler is running it.
    Processing,
    /// An attempt failed; it waits for its backoff before it is queued again.
    Retrying,
    /// The handler finished successfully.
    Success,
    /// Dead-lettered: retries exhausted, a fatal error, or delivered too often (poison).
    Failed,
    /// Cancelled before it started.
    Cancelled,
}

impl TaskStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Pending,
        TaskStatus::Scheduled,
        TaskStatus::Processing,
        TaskStatus::Retrying,
        TaskStatus::Success,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The status as written on the wire and in stores.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Scheduled => "scheduled",
            TaskStatus::Processing => "processing",
            TaskStatus::Retrying => "retrying",
            TaskStatus::Success => "success",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the task will not run again by itself.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Success | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// Whether the task may still be cancelled (it has not started, or waits for a retry).
    pub fn is_cancellable(self) -> bool {
        matches!(
            self,
            TaskStatus::Pending | TaskStatus::Scheduled | TaskStatus::Retrying
        )
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
                Error::invalid(
                    "status",
                    format!("unknown status {s:?}; expected one of {}", all.join(", ")),
                )
            })
    }
}

/// A task as XQueue tracks it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Unique id, given by XQueue.
    pub id: TaskId,
    /// Selects the handler.
    pub task_type: String,
    /// The client's JSON payload, passed to the handler as is.
    pub payload: Value,
    /// 0 (lowest) to 9 (highest).
    pub priority: u8,
    /// Lifecycle status.
    pub status: TaskStatus,
    /// Attempts started so far (the first run is attempt 1).
    pub attempts: u32,
    /// Retries allowed after the first attempt fails.
    pub max_retries: u32,
    /// Per-attempt time limit in milliseconds; `None` uses the type's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// When it was submitted.
    pub created_at: UnixMillis,
    /// When it becomes runnable (delayed tasks and retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<UnixMillis>,
    /// When the latest attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<UnixMillis>,
    /// When it reached a finished status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    /// The error of the latest failed attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// What the handler returned on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The consumer that ran the latest attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

impl Task {
    /// Encodes the task for a store.
    pub fn encode(&self) -> Vec<u8> {
        // A Task holds only strings, numbers and JSON values: serialisation cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a task written by [`Task::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::Codec {
            what: "task".into(),
            message: e.to_string(),
        })
    }

    /// The queue a message for this task goes to.
    pub fn queue(&self) -> QueueName {
        QueueName::for_task(&self.task_type, self.priority)
    }

    /// The message that carries this task on a queue.
    pub fn message(&self) -> Message {
        Message {
            task_id: self.id.clone(),
            task_type: self.task_type.clone(),
            priority: self.priority,
            enqueued_at: now_millis(),
        }
    }
}

/// What a client submits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewTask {
    /// The handler's task type.
    pub task_type: String,
    /// Any JSON value.
    #[serde(default)]
    pub payload: Value,
    /// 0..=9, default [`DEFAULT_PRIORITY`].
    #[serde(default)]
    pub priority: Option<u8>,
    /// Retries after a failed first attempt; default: the type's setting.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// Per-attempt time limit; default: the type's setting.
    #[serde(default)]
    pub timeout: Option<Duration>,
    /// Run no earlier than this time. Exclusive with `delay`.
    #[serde(default)]
    pub run_at: Option<UnixMillis>,
    /// Run no earlier than this long from now. Exclusive with `run_at`.
    #[serde(default)]
    pub delay: Option<Duration>,
}

impl NewTask {
    /// A task of `task_type` with `payload` and every option at its default.
    pub fn new(task_type: impl Into<String>, payload: Value) -> Self {
        NewTask {
            task_type: task_type.into(),
            payload,
            ..Default::default()
        }
    }

    /// Sets the priority (0..=9).
    pub fn priority(mut self, priority: u8) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Sets the retries allowed after the first attempt.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Sets the per-attempt time limit.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Delays the task by `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Schedules the task for `at`.
    pub fn run_at(mut self, at: UnixMillis) -> Self {
        self.run_at = Some(at);
        self
    }
}

/// Checks a task type name: 1 to 64 of `A-Z a-z 0-9 _ -`.
///
/// The character set is what every backend accepts in a key or topic name.
pub fn validate_task_type(task_type: &str) -> Result<()> {
    if task_type.is_empty() {
        return Err(Error::invalid("type", "must not be empty"));
    }
    if task_type.len() > MAX_TASK_TYPE_LEN {
        return Err(Error::invalid(
            "type",
            format!("longer than {MAX_TASK_TYPE_LEN} characters"),
        ));
    }
    if let Some(c) = task_type
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(Error::invalid(
            "type",
            format!("{task_type:?} contains {c:?}; use only A-Z, a-z, 0-9, '_' and '-'"),
        ));
    }
    Ok(())
}

/// Checks a priority: 0..=[`MAX_PRIORITY`].
pub fn validate_priority(priority: u8) -> Result<()> {
    if priority > MAX_PRIORITY {
        return Err(Error::invalid(
            "priority",
            format!("{priority} is out of range 0..={MAX_PRIORITY}"),
        ));
    }
    Ok(())
}

/// The priority band a task's message is queued in.
///
/// Each task type has one queue per band, so a backlog of low-priority tasks never sits in
/// front of a high-priority one. Inside a band, tasks are fetched in submission order; among
/// the tasks a worker pool has fetched, the highest priority is started first (see the
/// worker pool's priority policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Band {
    /// Priorities 7..=9.
    High,
    /// Priorities 4..=6.
    Normal,
    /// Priorities 0..=3.
    Low,
}

impl Band {
    /// Bands from most to least urgent.
    pub const ALL: [Band; 3] = [Band::High, Band::Normal, Band::Low];

    /// The band of a priority.
    pub fn of(priority: u8) -> Band {
        match priority {
            7.. => Band::High,
            4..=6 => Band::Normal,
            _ => Band::Low,
        }
    }

    /// The band's name in queue names.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::High => "high",
            Band::Normal => "normal",
            Band::Low => "low",
        }
    }
}

/// A queue's logical name: `<task type>.<band>`, e.g. `email.high`.
///
/// Backends add their own prefix (Redis key prefix, Kafka topic prefix). The name uses only
/// characters valid in both a Redis key and a Kafka topic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QueueName(String);

impl QueueName {
    /// The queue of `task_type` for `priority`.
    pub fn for_task(task_type: &str, priority: u8) -> Self {
        Self::for_band(task_type, Band::of(priority))
    }

    /// The queue of `task_type` for `band`.
    pub fn for_band(task_type: &str, band: Band) -> Self {
        QueueName(format!("{task_type}.{}", band.as_str()))
    }

    /// All queues of a task type, most urgent first.
    pub fn all_for_type(task_type: &str) -> Vec<QueueName> {
        Band::ALL
            .iter()
            .map(|b| Self::for_band(task_type, *b))
            .collect()
    }

    /// A queue with an arbitrary name (conformance tests, tools).
    pub fn raw(name: impl Into<String>) -> Self {
        QueueName(name.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What travels on a queue: a reference to a task, plus what routing and metrics need.
///
/// The task itself (payload, status) lives in the [`crate::StateStore`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The task this message runs.
    pub task_id: TaskId,
    /// Its type.
    pub task_type: String,
    /// Its priority.
    pub priority: u8,
    /// When the message was published, for latency measurements.
    pub enqueued_at: UnixMillis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_reject_garbage() {
        let id = TaskId::generate();
        assert_eq!(id.as_str().parse::<TaskId>().unwrap(), id);
        assert!(matches!(
            "../etc".parse::<TaskId>(),
            Err(Error::InvalidInput {
                field: "task_id",
                ..
            })
        ));
    }

    #[test]
    fn status_round_trips_and_rejects_unknown() {
        for st in TaskStatus::ALL {
            assert_eq!(st.as_str().parse::<TaskStatus>().unwrap(), st);
        }
        let err = "done".parse::<TaskStatus>().unwrap_err().to_string();
        assert!(err.contains("pending"), "{err}");
    }

    #[test]
    fn task_type_rules() {
        assert!(validate_task_type("email").is_ok());
        assert!(validate_task_type("image-resize_v2").is_ok());
        assert!(validate_task_type("").is_err());
        assert!(validate_task_type("a.b").is_err());
        assert!(validate_task_type("a b").is_err());
        assert!(validate_task_type(&"x".repeat(65)).is_err());
    }

    #[test]
    fn bands_cover_all_priorities() {
        assert_eq!(Band::of(0), Band::Low);
        assert_eq!(Band::of(3), Band::Low);
        assert_eq!(Band::of(4), Band::Normal);
        assert_eq!(Band::of(6), Band::Normal);
        assert_eq!(Band::of(7), Band::High);
        assert_eq!(Band::of(9), Band::High);
        assert_eq!(QueueName::for_task("email", 8).as_str(), "email.high");
        assert!(validate_priority(10).is_err());
    }

    #[test]
    fn task_codec_round_trips() {
        let t = Task {
            id: TaskId::generate(),
            task_type: "email".into(),
            payload: serde_json::json!({"to": "a@b.c"}),
            priority: 5,
            status: TaskStatus::Pending,
            attempts: 0,
            max_retries: 3,
            timeout_ms: Some(1000),
            created_at: now_millis(),
            run_at: None,
            started_at: None,
            finished_at: None,
            last_error: None,
            result: None,
            worker: None,
        };
        assert_eq!(Task::decode(&t.encode()).unwrap(), t);
        assert!(Task::decode(b"{").is_err());
    }
}
