//! [`TaskManager`]: submit, inspect and run tasks, on any backend.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::ManagerConfig;
use crate::error::{Error, Result};
use crate::handler::{HandlerOptions, TaskHandler};
use crate::pool::{lock_mutex, Engine, Lane};
use crate::queue::{ConsumerInfo, QueueInfo};
use crate::state::StatusCounts;
use crate::task::{
    now_millis, validate_priority, validate_task_type, NewTask, QueueName, Task, TaskId,
    TaskStatus, DEFAULT_PRIORITY,
};
use crate::Backends;

/// Most tasks one `list` call returns.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Most retries a task may ask for.
pub const MAX_RETRIES: u32 = 100;
/// Longest per-attempt timeout a task may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Furthest in the future a task may be scheduled.
pub const MAX_DELAY: Duration = Duration::from_secs(366 * 24 * 3600);
/// Highest per-type concurrency limit.
pub const MAX_CONCURRENCY: u32 = 100_000;

/// This instance's worker pool, as `GET /workers` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerStats {
    /// Worker slots.
    pub total_workers: usize,
    /// Slots running a task now.
    pub active_workers: usize,
    /// Attempts that succeeded on this instance since it started.
    pub processed_tasks: u64,
    /// Attempts that failed on this instance since it started.
    pub failed_tasks: u64,
    /// Failed attempts that were scheduled for a retry.
    pub retried_tasks: u64,
    /// Tasks dead-lettered by this instance.
    pub dead_lettered_tasks: u64,
    /// Tasks that a submit on this instance handed straight to an idle worker here (see
    /// [`ManagerConfig::start_on_submit`]).
    pub started_on_submit: u64,
    /// Finished attempts per second over the last ten seconds.
    pub throughput: f64,
    /// Time since the manager was created.
    pub uptime: Duration,
}

/// Every queue of the registered types, summed, as `GET /stream` reports it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QueueStats {
    /// Messages stored, over all queues.
    pub length: u64,
    /// Messages not yet delivered.
    pub waiting: u64,
    /// Delivered, not yet acked.
    pub pending: u64,
    /// Consumer groups (the most on any one queue).
    pub groups: u64,
    /// Group members over all queues, merged by name.
    pub consumers: Vec<ConsumerInfo>,
    /// Per queue.
    pub queues: Vec<QueueInfo>,
}

/// Cluster-wide task counts plus this instance's view, as `GET /stats` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct Stats {
    /// Tasks per status, across every instance.
    pub counts: StatusCounts,
    /// This instance's worker pool.
    pub workers: WorkerStats,
    /// The queues.
    pub queues: QueueStats,
    /// This instance.
    pub instance_id: String,
    /// Whether the worker pool is running.
    pub is_running: bool,
    /// The queue backend's kind.
    pub backend: &'static str,
}

/// What a graceful shutdown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ShutdownReport {
    /// Fetched deliveries given back before they started.
    pub given_back: usize,
    /// Running tasks cut off by the deadline and given back for redelivery.
    pub cut_off: usize,
}

/// Submits, inspects and runs tasks: the one place where XQueue's policy lives.
///
/// Cheap to clone; clones share one manager. Dropping the last clone of a started manager
/// without [`shutdown`](Self::shutdown) stops it at once, like a crash: nothing is acked, and
/// what it held is redelivered to other instances.
///
/// ```
/// # async fn demo() -> xqueue_core::Result<()> {
/// use std::sync::Arc;
/// use serde_json::{json, Value};
/// use xqueue_core::{memory, ManagerConfig, NewTask, Task, TaskError, TaskHandler, TaskManager};
///
/// struct Echo;
/// #[async_trait::async_trait]
/// impl TaskHandler for Echo {
///     fn task_type(&self) -> &str { "echo" }
///     async fn handle(&self, task: &Task) -> Result<Value, TaskError> {
///         Ok(task.payload.clone())
///     }
/// }
///
/// let manager = TaskManager::new(memory::backends(), ManagerConfig::default());
/// manager.register_handler(Arc::new(Echo))?;
/// manager.start().await?;
/// let task = manager.submit(NewTask::new("echo", json!({"hi": 1}))).await?;
/// # tokio::time::sleep(std::time::Duration::from_millis(100)).await;
/// let done = manager.get(&task.id).await?;
/// # assert_eq!(done.result, Some(json!({"hi": 1})));
/// manager.shutdown(std::time::Duration::from_secs(5)).await;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Clone)]
pub struct TaskManager {
    engine: Arc<Engine>,
    _guard: Arc<DropGuard>,
}

struct DropGuard(Arc<Engine>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.abort_all();
    }
}

impl std::fmt::Debug for TaskManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskManager")
            .field("instance_id", &self.engine.config.instance_id)
            .field("backends", &self.engine.backends)
            .finish()
    }
}

impl TaskManager {
    /// A manager on `backends`; nothing runs until [`start`](Self::start).
    pub fn new(backends: Backends, config: ManagerConfig) -> Self {
        let engine = Arc::new(Engine::new(backends, config));
        TaskManager {
            _guard: Arc::new(DropGuard(engine.clone())),
            engine,
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ManagerConfig {
        &self.engine.config
    }

    /// The backends it runs on.
    pub fn backends(&self) -> &Backends {
        &self.engine.backends
    }

    /// Registers `handler` with default [`HandlerOptions`].
    pub fn register_handler(&self, handler: Arc<dyn TaskHandler>) -> Result<()> {
        self.register_handler_with(handler, HandlerOptions::default())
    }

    /// Registers `handler` for its task type.
    ///
    /// # Behavior
    /// - A second handler for the same type is [`Error::InvalidInput`].
    /// - `options.max_concurrency` is applied (cluster-wide) when the manager starts, or at
    ///   once when it is already running (then through a spawned call).
    pub fn register_handler_with(
        &self,
        handler: Arc<dyn TaskHandler>,
        options: HandlerOptions,
    ) -> Result<()> {
        let task_type = handler.task_type().to_owned();
        validate_task_type(&task_type)?;
        if options.max_concurrency == Some(0) {
            return Err(Error::invalid("max_concurrency", "must be at least 1"));
        }
        let lane = Arc::new(Lane::new(handler, options));
        {
            let mut lanes = self.engine.lanes.write().unwrap_or_else(|e| e.into_inner());
            if lanes.contains_key(&task_type) {
                return Err(Error::invalid(
                    "type",
                    format!("a handler for {task_type:?} is already registered"),
                ));
            }
            lanes.insert(task_type.clone(), lane.clone());
        }
        if self.engine.is_started.load(Ordering::SeqCst) {
            let engine = self.engine.clone();
            tokio::spawn(async move {
                if let Some(limit) = lane.options.max_concurrency {
                    if let Err(e) = engine
                        .backends
                        .limiter
                        .set_limit(&lane.task_type, limit)
                        .await
                    {
                        tracing::warn!(task_type = %lane.task_type, error = %e, "could not set limit");
                    }
                }
                engine.start_lane(lane);
            });
        }
        Ok(())
    }

    /// Task types with a registered handler, sorted.
    pub fn task_types(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .engine
            .lanes()
            .iter()
            .map(|l| l.task_type.clone())
            .collect();
        t.sort();
        t
    }

    /// Starts the worker pool and the maintenance loops.
    ///
    /// # Behavior
    /// - Applies the `max_concurrency` of every registered handler first.
    /// - Starting twice is [`Error::InvalidInput`].
    pub async fn start(&self) -> Result<()> {
        if self.engine.is_started.swap(true, Ordering::SeqCst) {
            return Err(Error::invalid("manager", "already started"));
        }
        for lane in self.engine.lanes() {
            if let Some(limit) = lane.options.max_concurrency {
                self.engine
                    .backends
                    .limiter
                    .set_limit(&lane.task_type, limit)
                    .await?;
            }
        }
        self.engine.refresh_limits().await?;
        self.engine.start_completer();
        for lane in self.engine.lanes() {
            self.engine.start_lane(lane);
        }
        crate::maintenance::start(&self.engine);
        tracing::info!(
            instance_id = %self.engine.config.instance_id,
            backend = self.engine.backends.queue.kind(),
            workers = self.engine.config.workers,
            "task manager started"
        );
        Ok(())
    }

    /// Whether the worker pool runs (started and not shut down).
    pub fn is_running(&self) -> bool {
        self.engine.is_started.load(Ordering::SeqCst) && !self.engine.stop_intake.is_cancelled()
    }

    /// Stops gracefully: no more fetching; fetched tasks that have not started are given back
    /// at once; running tasks get until `deadline` to finish and be acked; those still running
    /// then are cancelled and given back, to be redelivered (never lost).
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let report = self.engine.shutdown(deadline).await;
        tracing::info!(?report, "task manager stopped");
        report
    }

    /// Submits one task; see [`submit_batch`](Self::submit_batch).
    pub async fn submit(&self, task: NewTask) -> Result<Task> {
        let mut tasks = self.submit_batch(vec![task]).await?;
        Ok(tasks.remove(0))
    }

    /// Submits tasks, all or none.
    ///
    /// # Behavior
    /// - Every task is validated first; one invalid task rejects the batch with
    ///   [`Error::InvalidInput`] or [`Error::UnknownTaskType`], and nothing is stored.
    /// - A task with a future `run_at` or a `delay` is `scheduled`; others are `pending` and
    ///   queued at once.
    /// - When this returns `Ok`, every task is stored and will run (at least once), even if
    ///   this process dies right after.
    /// - When the queue refuses ([`Error::QueueFull`]) the stored tasks are cancelled and the
    ///   error returned: they will not run.
    /// - The tasks come back as stored: `pending` or `scheduled`, or already `processing`
    ///   (attempt 1, on this instance) when an idle worker here took them at once (see
    ///   [`ManagerConfig::start_on_submit`]).
    pub async fn submit_batch(&self, new: Vec<NewTask>) -> Result<Vec<Task>> {
        if self.engine.stop_intake.is_cancelled() && self.engine.is_started.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let now = now_millis();
        let tasks = new
            .into_iter()
            .map(|n| self.build(n, now))
            .collect::<Result<Vec<Task>>>()?;
        if tasks.is_empty() {
            return Ok(tasks);
        }
        let state = &self.engine.backends.state;
        if self.engine.backends.queue_is_state()
            && tasks.iter().all(|t| t.status == TaskStatus::Pending)
        {
            let reservation = self.engine.reserve_for_submit(&tasks);
            let take = reservation.as_ref().map(|r| &r.take);
            if let Some(taken) = state.insert_published(&tasks, take).await? {
                let mut tasks = tasks;
                // Tasks started here are answered as they are now: `processing`.
                for begun in taken.iter().filter_map(|t| t.task.as_ref()) {
                    if let Some(t) = tasks.iter_mut().find(|t| t.id == begun.id) {
                        *t = begun.clone();
                    }
                }
                if let Some(reservation) = reservation {
                    self.engine.start_taken(reservation, taken).await;
                }
                return Ok(tasks);
            }
        }
        state.insert(&tasks).await?;
        let pending: Vec<Task> = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Pending)
            .cloned()
            .collect();
        let mut by_queue: BTreeMap<QueueName, Vec<&Task>> = BTreeMap::new();
        for t in &pending {
            by_queue.entry(t.queue()).or_default().push(t);
        }
        for (queue, group) in by_queue {
            let messages: Vec<_> = group.iter().map(|t| t.message()).collect();
            if let Err(e) = self.engine.backends.queue.publish(&queue, &messages).await {
                if matches!(e, Error::QueueFull { .. }) {
                    for t in &tasks {
                        let _ = state.cancel(&t.id, now_millis()).await;
                    }
                    return Err(e);
                }
                // Stored and guarded: the scheduler queues them when the guard comes due.
                tracing::warn!(%queue, error = %e, "publish failed; tasks will be queued by the publish guard");
                continue;
            }
            lock_mutex(&self.engine.to_release).extend(group.iter().map(|t| t.id.clone()));
        }
        Ok(tasks)
    }

    fn build(&self, n: NewTask, now: u64) -> Result<Task> {
        validate_task_type(&n.task_type)?;
        let lane = self
            .engine
            .lane(&n.task_type)
            .ok_or_else(|| Error::UnknownTaskType(n.task_type.clone()))?;
        let priority = n.priority.unwrap_or(DEFAULT_PRIORITY);
        validate_priority(priority)?;
        let max_retries = n.max_retries.unwrap_or(lane.options.max_retries);
        if max_retries > MAX_RETRIES {
            return Err(Error::invalid(
                "max_retries",
                format!("{max_retries} is above {MAX_RETRIES}"),
            ));
        }
        if let Some(t) = n.timeout {
            if t.is_zero() || t > MAX_TIMEOUT {
                return Err(Error::invalid(
                    "timeout",
                    format!("must be between 1 ms and {MAX_TIMEOUT:?}"),
                ));
            }
        }
        let run_at = match (n.run_at, n.delay) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "run_at",
                    "give either run_at or delay, not both",
                ))
            }
            (Some(at), None) => Some(at),
            (None, Some(d)) => Some(now + d.as_millis() as u64),
            (None, None) => None,
        };
        if let Some(at) = run_at {
            if at > now + MAX_DELAY.as_millis() as u64 {
                return Err(Error::invalid("run_at", "more than a year ahead"));
            }
        }
        let scheduled = run_at.is_some_and(|at| at > now);
        Ok(Task {
            id: TaskId::generate(),
            task_type: n.task_type,
            payload: n.payload,
            priority,
            status: if scheduled {
                TaskStatus::Scheduled
            } else {
                TaskStatus::Pending
            },
            attempts: 0,
            max_retries,
            timeout_ms: n.timeout.map(|t| t.as_millis().max(1) as u64),
            created_at: now,
            run_at: run_at.filter(|_| scheduled),
            started_at: None,
            finished_at: None,
            last_error: None,
            result: None,
            worker: None,
        })
    }

    /// One task. A missing (or expired) task is [`Error::NotFound`].
    pub async fn get(&self, id: &TaskId) -> Result<Task> {
        self.engine
            .backends
            .state
            .get(id)
            .await?
            .ok_or_else(|| Error::task_not_found(id))
    }

    /// Up to `limit` (1..=1000) tasks in `status`, oldest first.
    pub async fn list(&self, status: TaskStatus, limit: usize) -> Result<Vec<Task>> {
        if limit == 0 || limit > MAX_LIST_LIMIT {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIST_LIMIT}"),
            ));
        }
        self.engine.backends.state.list(status, limit).await
    }

    /// Cancels a task that has not started (`pending`, `scheduled`, `retrying`).
    ///
    /// # Behavior
    /// A running or finished task is [`Error::Conflict`]; a missing one [`Error::NotFound`].
    /// A task started ahead of a free worker ([`ManagerConfig::start_ahead`]) has started.
    /// A cancelled task's message, if already queued, is skipped when it is fetched.
    pub async fn cancel(&self, id: &TaskId) -> Result<Task> {
        self.engine.backends.state.cancel(id, now_millis()).await
    }

    /// Dead-lettered tasks, oldest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<Task>> {
        self.list(TaskStatus::Failed, limit).await
    }

    /// Re-runs dead-lettered tasks (`ids`, or all when `None`) with fresh attempts; they are
    /// queued within one scheduler tick. Returns how many.
    pub async fn requeue_dead(&self, ids: Option<&[TaskId]>) -> Result<u64> {
        self.engine
            .backends
            .state
            .requeue_failed(ids, now_millis())
            .await
    }

    /// Deletes dead-lettered tasks (`ids`, or all when `None`). Returns how many.
    pub async fn purge_dead(&self, ids: Option<&[TaskId]>) -> Result<u64> {
        self.engine.backends.state.purge_failed(ids).await
    }

    /// Sets the limit of `task_type` across every instance.
    ///
    /// # Behavior
    /// - Takes effect at once on this instance and within a second on the others.
    /// - Tasks already running are not revoked. A type that had no limit takes no permits, so
    ///   its tasks already running are not counted against a new limit; they finish as they are.
    pub async fn set_concurrency_limit(&self, task_type: &str, limit: u32) -> Result<()> {
        validate_task_type(task_type)?;
        if limit == 0 || limit > MAX_CONCURRENCY {
            return Err(Error::invalid(
                "max_concurrency",
                format!("must be between 1 and {MAX_CONCURRENCY}"),
            ));
        }
        self.engine
            .backends
            .limiter
            .set_limit(task_type, limit)
            .await?;
        if let Some(lane) = self.engine.lane(task_type) {
            lane.permit_freed.notify_waiters();
        }
        Ok(())
    }

    /// Every limit that is set.
    pub async fn concurrency_limits(&self) -> Result<BTreeMap<String, u32>> {
        self.engine.backends.limiter.limits().await
    }

    /// This instance's worker pool.
    pub fn worker_stats(&self) -> WorkerStats {
        let e = &self.engine;
        let c = &e.counters;
        let throughput = {
            let s = lock_mutex(&e.samples);
            match (s.front(), s.back()) {
                (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0).as_secs_f64(),
                _ => 0.0,
            }
        };
        WorkerStats {
            total_workers: e.config.workers,
            active_workers: e.active_workers(),
            processed_tasks: c.succeeded.load(Ordering::Relaxed),
            failed_tasks: c.failed_attempts.load(Ordering::Relaxed),
            retried_tasks: c.retried.load(Ordering::Relaxed),
            dead_lettered_tasks: c.dead_lettered.load(Ordering::Relaxed),
            started_on_submit: c.started_on_submit.load(Ordering::Relaxed),
            throughput,
            uptime: e.started_at.elapsed(),
        }
    }

    /// The queues of every registered type.
    pub async fn queue_stats(&self) -> Result<QueueStats> {
        let queues: Vec<QueueName> = self
            .task_types()
            .iter()
            .flat_map(|t| QueueName::all_for_type(t))
            .collect();
        let infos = self
            .engine
            .backends
            .queue
            .info(&self.engine.config.group, &queues)
            .await?;
        let mut stats = QueueStats::default();
        let mut consumers: BTreeMap<String, ConsumerInfo> = BTreeMap::new();
        for q in &infos {
            stats.length += q.length;
            stats.waiting += q.waiting;
            stats.pending += q.pending;
            stats.groups = stats.groups.max(q.groups);
            for c in &q.consumers {
                let e = consumers
                    .entry(c.name.clone())
                    .or_insert_with(|| ConsumerInfo {
                        name: c.name.clone(),
                        pending: 0,
                        idle_ms: c.idle_ms,
                    });
                e.pending += c.pending;
                e.idle_ms = e.idle_ms.min(c.idle_ms);
            }
        }
        stats.consumers = consumers.into_values().collect();
        stats.queues = infos;
        Ok(stats)
    }

    /// Task counts across the deployment and this instance's view.
    pub async fn stats(&self) -> Result<Stats> {
        let (counts, queues) =
            tokio::try_join!(self.engine.backends.state.counts(), self.queue_stats())?;
        Ok(Stats {
            counts,
            workers: self.worker_stats(),
            queues,
            instance_id: self.engine.config.instance_id.clone(),
            is_running: self.is_running(),
            backend: self.engine.backends.queue.kind(),
        })
    }
}
