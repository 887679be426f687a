//! Background loops every instance runs: the scheduler (delayed tasks, retries, publish
//! guards), retention, the lease keeper, and the reclaimer of dead consumers' deliveries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::pool::{lock_mutex, Engine};
use crate::state::PUBLISH_GUARD;
use crate::task::{now_millis, Message, QueueName, Task, TaskId, TaskStatus};

/// Most due tasks queued per scheduler tick.
const DUE_BATCH: usize = 1000;
/// Most finished tasks removed per call while enforcing retention.
const PURGE_BATCH: usize = 1000;
/// Most publish guards lifted per call, so one call never holds the backend for long.
const RELEASE_BATCH: usize = 1000;
/// How often an instance rereads the limits another instance may have set.
pub(crate) const LIMITS_REFRESH: Duration = Duration::from_secs(1);

/// Starts every maintenance loop of a started manager.
pub(crate) fn start(engine: &Arc<Engine>) {
    engine.spawn_loop(every(
        engine.clone(),
        engine.config.scheduler_interval,
        |e| Box::pin(async move { schedule_tick(&e).await }),
    ));
    engine.spawn_loop(every(
        engine.clone(),
        engine.config.retention_interval,
        |e| Box::pin(async move { retention_tick(&e).await }),
    ));
    let keep = (engine.config.claim_idle / 3)
        .min(engine.config.limiter_lease / 3)
        .max(Duration::from_millis(10));
    // Not at start: nothing is held yet, and what a start fetches has just been delivered.
    // (At once, this touched the first thousand or so deliveries of a backlog for nothing,
    // two commands each: BENCHMARKS.md, eighteenth pass.)
    engine.spawn_loop(every_after(engine.clone(), keep, keep, |e| {
        Box::pin(async move { keep_leases(&e).await })
    }));
    if engine.backends.queue.capabilities().idle_reclaim {
        let period =
            (engine.config.claim_idle / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
        engine.spawn_loop(every(engine.clone(), period, |e| {
            Box::pin(async move { reclaim_tick(&e).await })
        }));
    }
    engine.spawn_loop(every(engine.clone(), Duration::from_secs(1), |e| {
        Box::pin(async move { sample(&e) })
    }));
    engine.spawn_loop(every(engine.clone(), LIMITS_REFRESH, |e| {
        Box::pin(async move {
            if let Err(err) = e.refresh_limits().await {
                tracing::warn!(error = %err, "could not read concurrency limits");
            }
        })
    }));
}

type Tick = fn(Arc<Engine>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Runs `tick` at once, then every `period` (a tick that overruns delays the next).
async fn every(engine: Arc<Engine>, period: Duration, tick: Tick) {
    every_after(engine, Duration::ZERO, period, tick).await
}

/// Runs `tick` after `first`, then every `period`.
async fn every_after(engine: Arc<Engine>, first: Duration, period: Duration, tick: Tick) {
    let stop = engine.stop_all.clone();
    let period = period.max(Duration::from_millis(1));
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => tick(engine.clone()).await,
            _ = stop.cancelled() => return,
        }
    }
}

/// Publishes due tasks (delayed, retries, re-runs, publish guards), then lifts their guards.
async fn schedule_tick(engine: &Engine) {
    release_published(engine).await;
    if engine.stop_intake.is_cancelled() {
        return;
    }
    let state = &engine.backends.state;
    loop {
        let due = match state
            .claim_due(now_millis(), PUBLISH_GUARD, DUE_BATCH)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the schedule");
                return;
            }
        };
        let n = due.len();
        let published = publish_tasks(engine, &due).await;
        if let Err(e) = state.release_due(&published).await {
            // The guards stay; the tasks are published again after the lease and run once.
            tracing::warn!(error = %e, "could not lift publish guards");
        }
        if n < DUE_BATCH {
            return;
        }
    }
}

/// Publishes tasks grouped by queue; returns the ids that were published.
pub(crate) async fn publish_tasks(engine: &Engine, tasks: &[Task]) -> Vec<TaskId> {
    let mut by_queue: BTreeMap<QueueName, (Vec<Message>, Vec<TaskId>)> = BTreeMap::new();
    for t in tasks {
        let e = by_queue.entry(t.queue()).or_default();
        e.0.push(t.message());
        e.1.push(t.id.clone());
    }
    let mut published = Vec::with_capacity(tasks.len());
    for (queue, (messages, ids)) in by_queue {
        match engine.backends.queue.publish(&queue, &messages).await {
            Ok(()) => published.extend(ids),
            Err(e) => tracing::warn!(%queue, error = %e, "could not queue due tasks; will retry"),
        }
    }
    published
}

/// Lifts the publish guards of tasks that `submit` published.
pub(crate) async fn release_published(engine: &Engine) {
    let ids = std::mem::take(&mut *lock_mutex(&engine.to_release));
    for (i, chunk) in ids.chunks(RELEASE_BATCH).enumerate() {
        if let Err(e) = engine.backends.state.release_due(chunk).await {
            tracing::warn!(error = %e, "could not lift publish guards; retrying");
            lock_mutex(&engine.to_release).extend_from_slice(&ids[i * RELEASE_BATCH..]);
            return;
        }
    }
}

async fn retention_tick(engine: &Engine) {
    let now = now_millis();
    let c = &engine.config;
    for (status, keep) in [
        (TaskStatus::Success, c.retention),
        (TaskStatus::Cancelled, c.retention),
        (TaskStatus::Failed, c.failed_retention),
    ] {
        let before = now.saturating_sub(keep.as_millis() as u64);
        loop {
            match engine
                .backends
                .state
                .purge_finished(status, before, PURGE_BATCH)
                .await
            {
                Ok(n) if n as usize >= PURGE_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(%status, error = %e, "could not remove expired tasks");
                    break;
                }
            }
        }
    }
}

/// Keeps this instance's concurrency permits and held deliveries from expiring.
async fn keep_leases(engine: &Engine) {
    let name = &engine.consumer.name;
    if let Err(e) = engine
        .backends
        .limiter
        .refresh(name, engine.config.limiter_lease)
        .await
    {
        tracing::warn!(error = %e, "could not refresh concurrency leases");
    }
    if engine.backends.queue.capabilities().touch {
        let held = engine.held_receipts();
        if !held.is_empty() {
            if let Err(e) = engine.backends.queue.touch(&engine.consumer, &held).await {
                tracing::warn!(error = %e, "could not touch held deliveries");
            }
        }
    }
}

/// Takes over deliveries that dead consumers left idle.
async fn reclaim_tick(engine: &Engine) {
    if engine.stop_intake.is_cancelled() {
        return;
    }
    for lane in engine.lanes() {
        let room = engine.buffer_limit(&lane).saturating_sub(lane.len());
        if room == 0 {
            continue;
        }
        match engine
            .backends
            .queue
            .reclaim(
                &engine.consumer,
                &lane.queues,
                engine.config.claim_idle,
                room,
            )
            .await
        {
            Ok(ds) if !ds.is_empty() => {
                let fresh: Vec<_> = ds
                    .into_iter()
                    .filter(|d| !engine.holds(&d.receipt))
                    .collect();
                if !fresh.is_empty() {
                    tracing::info!(task_type = %lane.task_type, count = fresh.len(), "reclaimed idle deliveries");
                    lane.push(fresh);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(task_type = %lane.task_type, error = %e, "reclaim failed"),
        }
    }
}

fn sample(engine: &Engine) {
    let done = engine
        .counters
        .succeeded
        .load(std::sync::atomic::Ordering::Relaxed)
        + engine
            .counters
            .failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed);
    let mut s = lock_mutex(&engine.samples);
    s.push_back((Instant::now(), done));
    while s.len() > 11 {
        s.pop_front();
    }
}
