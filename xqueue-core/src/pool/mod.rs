//! The worker pool: fetches deliveries, starts them under the limits, records outcomes.
//!
//! Per registered task type, a *lane* runs two loops: a fetcher that keeps the lane's buffer
//! filled from the type's queues (fetching only while the buffer has room), and a dispatcher
//! that takes a worker slot and a concurrency permit and starts the buffered task the priority
//! policy picks. A type at its limit holds no worker slot and no fetch of another type's
//! queues, so it never delays other types. Finished attempts go to one completer task, which
//! records them in the state store, acks, and releases permits in batches.

mod dispatch;
mod lane;
mod run;
mod submit;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

use crate::config::ManagerConfig;
use crate::queue::{Consumer, Receipt};
use crate::state::Completion;
use crate::task::{Task, TaskId};
use crate::Backends;

pub(crate) use lane::Lane;
pub(crate) use run::Done;

/// Counters of this instance since it started.
#[derive(Default)]
pub(crate) struct Counters {
    pub started: AtomicU64,
    pub succeeded: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub started_on_submit: AtomicU64,
}

/// A task being run by a handler on this instance.
pub(crate) struct Running {
    pub task_id: TaskId,
    pub task_type: String,
    pub abort: AbortHandle,
    /// Whether it holds a concurrency permit.
    pub permit: bool,
}

/// Everything the pool's loops share.
pub(crate) struct Engine {
    pub backends: Backends,
    pub config: ManagerConfig,
    pub consumer: Consumer,
    pub lanes: RwLock<HashMap<String, Arc<Lane>>>,
    pub workers: Arc<Semaphore>,
    pub counters: Counters,
    pub started_at: Instant,
    /// Stops fetching and dispatching (graceful shutdown, first step).
    pub stop_intake: CancellationToken,
    /// Stops every loop.
    pub stop_all: CancellationToken,
    pub running: Mutex<HashMap<Receipt, Running>>,
    pub running_changed: Notify,
    pub done_tx: Mutex<Option<mpsc::UnboundedSender<Done>>>,
    pub done_rx: Mutex<Option<mpsc::UnboundedReceiver<Done>>>,
    /// Deliveries sent to the completer and not yet recorded and acked.
    pub unrecorded: AtomicUsize,
    /// Notified each time the completer has recorded a batch.
    pub recorded: Notify,
    /// Submitted tasks whose publish guard can be lifted.
    pub to_release: Mutex<Vec<TaskId>>,
    /// Background loops, aborted if the manager is dropped without shutdown.
    pub loops: Mutex<Vec<AbortHandle>>,
    /// The lanes' fetch and dispatch loops, awaited by shutdown.
    pub lane_loops: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    pub completer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub is_started: std::sync::atomic::AtomicBool,
    /// The limits as last read from the limiter: types missing here take no permits.
    pub limits: RwLock<HashMap<String, u32>>,
    /// Processed-task counts sampled once a second, for throughput.
    pub samples: Mutex<std::collections::VecDeque<(Instant, u64)>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Engine {
    pub fn new(backends: Backends, config: ManagerConfig) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Engine {
            consumer: Consumer::new(config.group.clone(), config.instance_id.clone()),
            workers: Arc::new(Semaphore::new(config.workers.max(1))),
            backends,
            config,
            lanes: RwLock::new(HashMap::new()),
            counters: Counters::default(),
            started_at: Instant::now(),
            stop_intake: CancellationToken::new(),
            stop_all: CancellationToken::new(),
            running: Mutex::new(HashMap::new()),
            running_changed: Notify::new(),
            done_tx: Mutex::new(Some(tx)),
            done_rx: Mutex::new(Some(rx)),
            unrecorded: AtomicUsize::new(0),
            recorded: Notify::new(),
            to_release: Mutex::new(Vec::new()),
            loops: Mutex::new(Vec::new()),
            lane_loops: Mutex::new(Vec::new()),
            completer: Mutex::new(None),
            is_started: Default::default(),
            samples: Mutex::new(Default::default()),
            limits: RwLock::new(HashMap::new()),
        }
    }

    pub fn lanes(&self) -> Vec<Arc<Lane>> {
        self.lanes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn lane(&self, task_type: &str) -> Option<Arc<Lane>> {
        self.lanes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(task_type)
            .cloned()
    }

    /// Spawns a background loop that stops with the manager.
    pub fn spawn_loop<F>(self: &Arc<Self>, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let h = tokio::spawn(fut);
        lock(&self.loops).push(h.abort_handle());
    }

    /// Starts the fetcher and dispatcher of a lane.
    pub fn start_lane(self: &Arc<Self>, lane: Arc<Lane>) {
        let mut loops = lock(&self.lane_loops);
        loops.push(tokio::spawn(dispatch::fetch_loop(
            self.clone(),
            lane.clone(),
        )));
        loops.push(tokio::spawn(dispatch::dispatch_loop(self.clone(), lane)));
    }

    /// Starts the completer.
    pub fn start_completer(self: &Arc<Self>) {
        if let Some(rx) = lock(&self.done_rx).take() {
            let h = tokio::spawn(run::completer(self.clone(), rx));
            *lock(&self.completer) = Some(h);
        }
    }

    pub fn send_done(&self, done: Done) {
        if let Some(tx) = lock(&self.done_tx).as_ref() {
            // The receiver lives until the completer ends, which is after the sender is dropped.
            self.unrecorded.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(done);
        }
    }

    /// Whether the completer is so far behind that no more tasks should begin until it
    /// catches up (see [`run::UNRECORDED_MAX`]).
    pub fn completer_behind(&self) -> bool {
        self.unrecorded.load(Ordering::Relaxed) >= run::UNRECORDED_MAX
    }

    /// Most deliveries `lane` buffers now (see [`Lane::buffer_limit`]).
    pub fn buffer_limit(&self, lane: &Lane) -> usize {
        lane.buffer_limit(self.config.workers, self.config.batch_size)
    }

    /// Whether `task_type` had a limit when the limits were last read.
    pub fn is_limited(&self, task_type: &str) -> bool {
        self.limits
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(task_type)
    }

    /// Reads the limits from the limiter into the cache.
    pub async fn refresh_limits(&self) -> crate::Result<()> {
        let limits = self.backends.limiter.limits().await?;
        *self.limits.write().unwrap_or_else(|e| e.into_inner()) = limits.into_iter().collect();
        Ok(())
    }

    pub fn active_workers(&self) -> usize {
        lock(&self.running).len()
    }

    /// Receipts this instance holds: buffered and running.
    pub fn held_receipts(&self) -> Vec<Receipt> {
        let mut out: Vec<Receipt> = lock(&self.running).keys().cloned().collect();
        for lane in self.lanes() {
            out.extend(lane.receipts());
        }
        out
    }

    pub fn holds(&self, receipt: &Receipt) -> bool {
        lock(&self.running).contains_key(receipt) || self.lanes().iter().any(|l| l.holds(receipt))
    }

    /// Graceful stop: see [`crate::TaskManager::shutdown`].
    pub async fn shutdown(self: &Arc<Self>, deadline: Duration) -> crate::ShutdownReport {
        let until = tokio::time::Instant::now() + deadline;
        self.stop_intake.cancel();
        let q = &self.backends.queue;

        // Fetches in flight end within the block timeout; wait for them (and for dispatches
        // in progress) so nothing is added to a buffer after it is drained.
        let lane_loops: Vec<_> = lock(&self.lane_loops).drain(..).collect();
        let grace = self.config.block_timeout + Duration::from_secs(2);
        for h in lane_loops {
            let abort = h.abort_handle();
            if tokio::time::timeout(grace, h).await.is_err() {
                abort.abort();
            }
        }

        // Deliveries fetched but not started go back at once; tasks started ahead that no
        // worker took are reset to `pending` first.
        let mut given_back = 0;
        for lane in self.lanes() {
            let mut receipts: Vec<Receipt> = lane.drain().into_iter().map(|d| d.receipt).collect();
            let ready = lane.drain_ready();
            let ids: Vec<TaskId> = ready.iter().map(|r| r.task.id.clone()).collect();
            receipts.extend(ready.into_iter().map(|r| r.delivery.receipt));
            given_back += receipts.len();
            self.give_back(&ids, &receipts, "fetched tasks not run")
                .await;
        }

        // Running tasks get until the deadline.
        loop {
            let changed = self.running_changed.notified();
            if self.active_workers() == 0 {
                break;
            }
            if tokio::time::timeout_at(until, changed).await.is_err() {
                break;
            }
        }
        let cut: Vec<(Receipt, Running)> = lock(&self.running).drain().collect();
        for (_, r) in &cut {
            r.abort.abort();
        }
        if !cut.is_empty() {
            tracing::warn!(
                count = cut.len(),
                "tasks missed the shutdown deadline; giving them back"
            );
            let ids: Vec<TaskId> = cut.iter().map(|(_, r)| r.task_id.clone()).collect();
            let receipts: Vec<Receipt> = cut.iter().map(|(rc, _)| rc.clone()).collect();
            self.give_back(&ids, &receipts, "cut-off tasks").await;
            let mut per_type: HashMap<String, u32> = HashMap::new();
            for (_, r) in cut.iter().filter(|(_, r)| r.permit) {
                *per_type.entry(r.task_type.clone()).or_default() += 1;
            }
            for (t, n) in per_type {
                let _ = self
                    .backends
                    .limiter
                    .release(&t, &self.consumer.name, n)
                    .await;
            }
        }

        // Let the completer record what finished, then stop everything.
        lock(&self.done_tx).take();
        let completer = lock(&self.completer).take();
        if let Some(h) = completer {
            let grace = until.max(tokio::time::Instant::now() + Duration::from_secs(2));
            if tokio::time::timeout_at(grace, h).await.is_err() {
                tracing::warn!(
                    "completer did not drain in time; unrecorded attempts will be redelivered"
                );
            }
        }
        crate::maintenance::release_published(self).await;
        self.stop_all.cancel();
        for h in lock(&self.loops).drain(..) {
            h.abort();
        }
        if let Err(e) = q.leave(&self.consumer).await {
            tracing::debug!(error = %e, "leaving the group failed");
        }
        crate::ShutdownReport {
            given_back,
            cut_off: cut.len(),
        }
    }

    /// Resets the begun tasks `ids` to `pending` (their attempt uncounted), then gives
    /// `receipts` back to the queue; failures are logged, since redelivery or reclaim still
    /// runs them.
    async fn give_back(&self, ids: &[TaskId], receipts: &[Receipt], what: &str) {
        if !ids.is_empty() {
            if let Err(e) = self.backends.state.unbegin(ids).await {
                tracing::warn!(error = %e, "could not reset {what}; they run again when redelivered");
            }
        }
        if !receipts.is_empty() {
            if let Err(e) = self.backends.queue.nack(&self.consumer, receipts).await {
                tracing::warn!(error = %e, "could not give back {what}; they will be reclaimed");
            }
        }
    }

    /// Stops every loop and running task at once, acking and recording nothing (a crash).
    pub fn abort_all(&self) {
        self.stop_intake.cancel();
        self.stop_all.cancel();
        for h in lock(&self.lane_loops).drain(..) {
            h.abort();
        }
        for h in lock(&self.loops).drain(..) {
            h.abort();
        }
        if let Some(h) = lock(&self.completer).take() {
            h.abort();
        }
        for (_, r) in lock(&self.running).drain() {
            r.abort.abort();
        }
    }
}

/// The completion a finished attempt sends to the completer: the end, now, of `task`'s attempt
/// (the task as `begin` returned it).
pub(crate) fn completion(task: &Task, outcome: crate::state::Outcome) -> Completion {
    Completion {
        id: task.id.clone(),
        outcome,
        at: crate::task::now_millis(),
        attempts: task.attempts,
        started_at: task.started_at,
        worker: task.worker.clone(),
    }
}

pub(crate) use lock as lock_mutex;
