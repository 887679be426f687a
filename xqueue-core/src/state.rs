//! Where task state lives, so that any instance can answer for any task.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::queue::{Consumer, Delivery};
use crate::task::{QueueName, Task, TaskId, TaskStatus, UnixMillis};

/// How many tasks are in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    /// Waiting on a queue.
    pub pending: u64,
    /// Waiting for their run time.
    pub scheduled: u64,
    /// Running.
    pub processing: u64,
    /// Waiting for a retry.
    pub retrying: u64,
    /// Finished successfully (within the retention).
    pub success: u64,
    /// Dead-lettered.
    pub failed: u64,
    /// Cancelled (within the retention).
    pub cancelled: u64,
}

impl StatusCounts {
    /// The count of one status.
    pub fn get(&self, status: TaskStatus) -> u64 {
        match status {
            TaskStatus::Pending => self.pending,
            TaskStatus::Scheduled => self.scheduled,
            TaskStatus::Processing => self.processing,
            TaskStatus::Retrying => self.retrying,
            TaskStatus::Success => self.success,
            TaskStatus::Failed => self.failed,
            TaskStatus::Cancelled => self.cancelled,
        }
    }

    /// Mutable access to the count of one status.
    pub fn get_mut(&mut self, status: TaskStatus) -> &mut u64 {
        match status {
            TaskStatus::Pending => &mut self.pending,
            TaskStatus::Scheduled => &mut self.scheduled,
            TaskStatus::Processing => &mut self.processing,
            TaskStatus::Retrying => &mut self.retrying,
            TaskStatus::Success => &mut self.success,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Cancelled => &mut self.cancelled,
        }
    }
}

/// What [`StateStore::begin`] decided for one task.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)] // Lives briefly in one batch; boxing buys nothing.
pub enum Begin {
    /// Run it: the task is now `processing`, `attempts` counts this attempt.
    Run(Task),
    /// Do not run it: it is gone (purged, expired), finished, cancelled, or waiting for a
    /// retry (the message is a stale duplicate). Ack the delivery and move on.
    Skip {
        /// The task.
        id: TaskId,
        /// Its status, `None` if it does not exist.
        status: Option<TaskStatus>,
    },
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The handler succeeded; `result` is stored on the task (`Null` for none).
    Success {
        /// The handler's result.
        result: Value,
    },
    /// The attempt failed and the task runs again at `run_at` (status `retrying`).
    Retry {
        /// The attempt's error.
        error: String,
        /// When to queue it again.
        run_at: UnixMillis,
    },
    /// The task is dead-lettered (status `failed`).
    Failed {
        /// Why.
        error: String,
    },
}

/// The end of one attempt, for [`StateStore::complete`].
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The task.
    pub id: TaskId,
    /// How the attempt ended.
    pub outcome: Outcome,
    /// When it ended.
    pub at: UnixMillis,
    /// The attempt's number, as [`StateStore::begin`] returned it in `Task::attempts`.
    pub attempts: u32,
    /// When the attempt started, as `begin` returned it in `Task::started_at`.
    pub started_at: Option<UnixMillis>,
    /// Who ran it, as `begin` returned it in `Task::worker`.
    pub worker: Option<String>,
}

/// Messages a submit may hand straight to the submitting instance's idle workers (see
/// [`StateStore::insert_published`]): no fetch and no `begin` round trip between the submit
/// and the handler.
#[derive(Clone, Debug)]
pub struct Take {
    /// Who receives the deliveries; its name is the worker of the attempts begun.
    pub consumer: Consumer,
    /// The queue to take from.
    pub queue: QueueName,
    /// At most this many messages.
    pub count: usize,
    /// The attempts' start time.
    pub now: UnixMillis,
}

/// A delivery [`StateStore::insert_published`] took for the submitting instance.
#[derive(Clone, Debug)]
pub struct Taken {
    /// The delivery, pending for [`Take::consumer`] until acked.
    pub delivery: Delivery,
    /// The task, if the submit began it (`processing`, this attempt counted): run it. `None`
    /// for an older message that was only delivered: begin it as any fetched delivery.
    pub task: Option<Task>,
}

/// How long a newly submitted `pending` task stays on the schedule as a publish guard.
///
/// The manager stores a task, publishes its message, then takes it off the schedule with
/// `release_due`. If the process dies between the store and the publish, the guard comes due
/// and any instance's scheduler publishes the task: a crash never loses an accepted task.
pub const PUBLISH_GUARD: Duration = Duration::from_secs(30);

/// Task state shared by every instance of a deployment.
///
/// # Contract
/// - `insert` stores new tasks whole or not at all (an id that exists already is
///   [`crate::Error::InvalidInput`] and nothing is stored), and puts each on the schedule: a
///   `scheduled` task due at its `run_at`, a `pending` task due at `created_at +`
///   [`PUBLISH_GUARD`].
/// - `begin` is a compare-and-set per task: `pending` and `processing` (a redelivery after a
///   worker vanished) become `processing` with `attempts + 1`, `started_at` and `worker` set,
///   and leave the schedule; every other status, and a missing task, is [`Begin::Skip`]. The
///   answer is in the order of `ids`.
/// - `complete` applies outcomes only to tasks that are `processing` (at most once per attempt
///   begun); anything else is left as it is (a cancelled or purged task stays so). The task
///   keeps the completion's `attempts`, `started_at` and `worker`. `Retry` puts the task on
///   the schedule.
/// - `claim_due` hands each due task (on the schedule with a due time `<= now` and status
///   `scheduled`, `retrying` or `pending`) to one caller only, even when several instances call
///   it at once: the task becomes `pending` and stays on the schedule, due again at
///   `now + lease`. Schedule entries of tasks in any other status are dropped. The caller publishes it and then calls
///   `release_due`; if the caller dies first, the task is due again after the lease, so it is
///   never lost (at worst published twice, which `begin` turns into one run).
/// - `release_due` takes tasks that are still `pending` off the schedule; a task that moved on
///   in the meantime (started, failed and now `retrying`) keeps its new schedule.
/// - `cancel` moves a `pending`, `scheduled` or `retrying` task to `cancelled` and removes it
///   from the schedule; any other status is [`crate::Error::Conflict`]; a missing task
///   [`crate::Error::NotFound`].
/// - `requeue_failed` moves dead-lettered tasks back to `scheduled`, due now, with `attempts`
///   reset, so the scheduler queues them again.
/// - `list` returns tasks of one status, oldest first; `counts` counts every status.
/// - `purge_finished` deletes tasks of a finished status that finished at or before `before`.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// The store's kind: `"memory"`, `"redis"`.
    fn kind(&self) -> &'static str;

    /// Stores new tasks.
    async fn insert(&self, tasks: &[Task]) -> Result<()>;

    /// Stores new `pending` tasks and publishes their messages (`Task::message`, on
    /// `Task::queue`) in one atomic step, when this store is also the queue backend; with
    /// `take`, it also hands messages of one queue straight to the submitting instance's idle
    /// workers, in that same step.
    ///
    /// The manager calls it only when its queue backend and state store are one object (the
    /// same `Arc`, as `RedisBackend::backends` builds them), so an implementation may publish
    /// on itself. Returns `Ok(None)`, having done nothing, when the store cannot; the manager
    /// then runs `insert`, `publish` and `release_due`. The default does that.
    ///
    /// # Contract
    /// - All or nothing: on `Ok(Some(_))` every task is stored, `pending`, with no schedule
    ///   entry (no publish guard is needed), and every message is on its queue; on an error
    ///   nothing is stored or published: an id that exists is
    ///   [`crate::Error::InvalidInput`], a queue without room for its messages
    ///   [`crate::Error::QueueFull`].
    /// - With `take`, after publishing, up to `take.count` messages of `take.queue` are
    ///   delivered to `take.consumer` exactly as a fetch would deliver them (oldest
    ///   undelivered first, pending for that consumer until acked), and those that carry a
    ///   task of this batch are begun as [`StateStore::begin`] would, with the consumer's name
    ///   as worker: they come back with [`Taken::task`] set. Others (older messages) come
    ///   back as deliveries only. If the consumer's group does not exist yet, nothing is
    ///   taken. Without `take`, or when the store cannot take, the answer is empty.
    async fn insert_published(
        &self,
        tasks: &[Task],
        take: Option<&Take>,
    ) -> Result<Option<Vec<Taken>>> {
        let _ = (tasks, take);
        Ok(None)
    }

    /// One task, if it exists.
    async fn get(&self, id: &TaskId) -> Result<Option<Task>>;

    /// Up to `limit` tasks with `status`, oldest first.
    async fn list(&self, status: TaskStatus, limit: usize) -> Result<Vec<Task>>;

    /// Tasks per status.
    async fn counts(&self) -> Result<StatusCounts>;

    /// Starts attempts: see the contract.
    async fn begin(&self, ids: &[TaskId], worker: &str, now: UnixMillis) -> Result<Vec<Begin>>;

    /// Records how attempts ended.
    async fn complete(&self, completions: &[Completion]) -> Result<()>;

    /// Removes a task from `processing` so it runs again: back to `pending` (the pool gave its
    /// delivery back before the attempt started, e.g. at shutdown). The attempt is not counted.
    async fn unbegin(&self, ids: &[TaskId]) -> Result<()>;

    /// Claims up to `limit` due tasks: see the contract.
    async fn claim_due(&self, now: UnixMillis, lease: Duration, limit: usize) -> Result<Vec<Task>>;

    /// Takes published tasks that are still `pending` off the schedule.
    async fn release_due(&self, ids: &[TaskId]) -> Result<()>;

    /// Cancels a task that has not started; returns it as cancelled.
    async fn cancel(&self, id: &TaskId, now: UnixMillis) -> Result<Task>;

    /// Re-runs dead-lettered tasks: `ids`, or all of them when `None`. Returns how many.
    async fn requeue_failed(&self, ids: Option<&[TaskId]>, now: UnixMillis) -> Result<u64>;

    /// Deletes dead-lettered tasks: `ids`, or all of them when `None`. Returns how many.
    async fn purge_failed(&self, ids: Option<&[TaskId]>) -> Result<u64>;

    /// Deletes up to `limit` tasks in `status` (a finished one) that finished at or before
    /// `before`. Returns how many.
    async fn purge_finished(
        &self,
        status: TaskStatus,
        before: UnixMillis,
        limit: usize,
    ) -> Result<u64>;
}
