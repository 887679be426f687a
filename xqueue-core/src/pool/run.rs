//! Running one attempt, and the completer that records attempts in batches.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tracing::Instrument;

use super::dispatch::ErrorBackoff;
use super::{completion, lock_mutex, Engine, Lane};
use crate::handler::TaskError;
use crate::queue::{Delivery, Receipt};
use crate::state::{Completion, Outcome};
use crate::task::{now_millis, Task};

/// A delivery the pool is done with.
pub(crate) struct Done {
    pub receipt: Receipt,
    pub task_type: String,
    /// What to record; `None` when the task was skipped (nothing to record, just ack).
    pub completion: Option<Completion>,
    /// Whether a concurrency permit of `task_type` is to be released.
    pub permit: bool,
}

/// Runs one attempt of `task` and hands the outcome to the completer.
pub(crate) async fn run(
    engine: Arc<Engine>,
    lane: Arc<Lane>,
    task: Task,
    delivery: Delivery,
    slot: OwnedSemaphorePermit,
    permit: bool,
) {
    let span = tracing::info_span!(
        "task",
        task_id = %task.id,
        task_type = %task.task_type,
        attempt = task.attempts,
        consumer = %engine.consumer.name,
        backend = engine.backends.queue.kind(),
    );
    let began = std::time::Instant::now();
    let outcome = attempt(&engine, &lane, &task).instrument(span).await;
    lane.observe_run(began.elapsed());
    {
        // Deregistered and reported under one lock: once shutdown sees no run, every outcome
        // is already on its way to the completer, whose sender it then drops. A run that
        // shutdown already cut off (and gave back) reports nothing.
        let mut running = lock_mutex(&engine.running);
        if running.remove(&delivery.receipt).is_some() {
            engine.send_done(Done {
                receipt: delivery.receipt,
                task_type: lane.task_type.clone(),
                completion: Some(completion(&task, outcome)),
                permit,
            });
        }
    }
    engine.running_changed.notify_waiters();
    // The slot goes straight to a task started ahead, if one is waiting.
    super::dispatch::run_ready_or_free(&engine, &lane, slot);
}

async fn attempt(engine: &Engine, lane: &Lane, task: &Task) -> Outcome {
    engine.counters.started.fetch_add(1, Ordering::Relaxed);
    let timeout = task
        .timeout_ms
        .map(Duration::from_millis)
        .or(lane.options.timeout);
    let call = AssertUnwindSafe(lane.handler.handle(task)).catch_unwind();
    let result = match timeout {
        Some(t) => match tokio::time::timeout(t, call).await {
            Ok(r) => r,
            Err(_) => Ok(Err(TaskError::retry(format!("timed out after {t:?}")))),
        },
        None => call.await,
    };
    let result = result.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into());
        Err(TaskError::retry(format!("handler panicked: {msg}")))
    });
    let c = &engine.counters;
    match result {
        Ok(result) => {
            c.succeeded.fetch_add(1, Ordering::Relaxed);
            tracing::debug!("task succeeded");
            Outcome::Success { result }
        }
        Err(e) => {
            c.failed_attempts.fetch_add(1, Ordering::Relaxed);
            if e.is_retryable() && task.attempts <= task.max_retries {
                c.retried.fetch_add(1, Ordering::Relaxed);
                let wait = engine.config.retry_backoff.delay(task.attempts);
                tracing::info!(error = %e, ?wait, "attempt failed; retrying");
                Outcome::Retry {
                    error: e.message().to_owned(),
                    run_at: now_millis() + wait.as_millis() as u64,
                }
            } else {
                c.dead_lettered.fetch_add(1, Ordering::Relaxed);
                let why = if e.is_retryable() {
                    format!("{} (after {} attempts)", e.message(), task.attempts)
                } else {
                    e.message().to_owned()
                };
                tracing::warn!(error = %why, "task failed; dead-lettered");
                Outcome::Failed { error: why }
            }
        }
    }
}

/// Most attempts one batch records.
const BATCH_MAX: usize = 512;

/// How many finished attempts may wait to be recorded before the lanes stop beginning tasks:
/// enough for the completer to record full batches, few enough that quick tasks cannot outrun
/// it. Without it, when handlers finish faster than the state store records (the store's
/// work is shared between starting and recording), finished tasks pile up unrecorded, still
/// shown `processing`, and every read of the running tasks grows with them.
pub(crate) const UNRECORDED_MAX: usize = 4 * BATCH_MAX;

/// Records finished attempts, acks their deliveries and releases their permits, in batches.
///
/// Order per batch: state first, then ack. A crash between the two redelivers the message,
/// and `begin` then skips the already-finished task: nothing runs twice for that reason.
///
/// One batch is on its way at a time, except while the completer is behind (it received a
/// full batch): then two are. They hold different attempts, so their order does not matter.
/// While even that does not keep up, the lanes stop beginning tasks ([`UNRECORDED_MAX`]).
/// The completer ends once every sender is dropped and every batch received is recorded;
/// aborting it aborts the batches on their way (a crash: their deliveries are redelivered).
pub(crate) async fn completer(engine: Arc<Engine>, mut rx: mpsc::UnboundedReceiver<Done>) {
    let mut on_their_way = tokio::task::JoinSet::new();
    loop {
        let mut batch = Vec::with_capacity(BATCH_MAX);
        if rx.recv_many(&mut batch, BATCH_MAX).await == 0 {
            break;
        }
        let behind = batch.len() == BATCH_MAX;
        on_their_way.spawn(record(engine.clone(), batch));
        // Keep one batch on its way, or two while behind.
        while on_their_way.len() > usize::from(behind) {
            on_their_way.join_next().await;
        }
    }
    while on_their_way.join_next().await.is_some() {}
}

/// Records one batch: outcomes, then acks, then permits; retries each step until it succeeds.
async fn record(engine: Arc<Engine>, batch: Vec<Done>) {
    let n = batch.len();
    let mut backoff = ErrorBackoff::new();
    // Taken apart by value: nothing of a batch is copied on the way to the backends.
    let mut completions = Vec::with_capacity(batch.len());
    let mut receipts = Vec::with_capacity(batch.len());
    let mut permits: HashMap<String, u32> = HashMap::new();
    for done in batch {
        completions.extend(done.completion);
        receipts.push(done.receipt);
        if done.permit {
            *permits.entry(done.task_type).or_default() += 1;
        }
    }
    if !completions.is_empty() {
        while let Err(e) = engine.backends.state.complete(&completions).await {
            let pause = backoff.next();
            tracing::warn!(error = %e, ?pause, "could not record finished tasks; retrying");
            tokio::time::sleep(pause).await;
        }
    }
    while let Err(e) = engine.backends.queue.ack(&engine.consumer, &receipts).await {
        let pause = backoff.next();
        tracing::warn!(error = %e, ?pause, "could not ack; retrying");
        tokio::time::sleep(pause).await;
    }
    for (task_type, n) in permits {
        if let Err(e) = engine
            .backends
            .limiter
            .release(&task_type, &engine.consumer.name, n)
            .await
        {
            tracing::warn!(%task_type, error = %e, "could not release permits; they expire with the lease");
        }
        if let Some(lane) = engine.lane(&task_type) {
            lane.permit_freed.notify_waiters();
        }
    }
    engine.unrecorded.fetch_sub(n, Ordering::Relaxed);
    engine.recorded.notify_waiters();
}
