//! The two loops of a lane: fetch into the buffer, dispatch from it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{lock_mutex, run, Engine, Lane};
use crate::queue::FetchRequest;
use crate::state::Begin;
use crate::task::{now_millis, Task, TaskId};

/// Growing pause after backend errors: 50 ms doubling to 5 s.
pub(crate) struct ErrorBackoff(Duration);

impl ErrorBackoff {
    pub fn new() -> Self {
        ErrorBackoff(Duration::from_millis(50))
    }

    pub fn reset(&mut self) {
        self.0 = Duration::from_millis(50);
    }

    pub fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
        d
    }
}

/// Keeps the lane's buffer filled: fetches whenever it is at most half full. Its size follows
/// the type's run time ([`Lane::buffer_limit`]), up to `batch_size`.
pub(crate) async fn fetch_loop(engine: Arc<Engine>, lane: Arc<Lane>) {
    let stop = engine.stop_intake.clone();
    let mut backoff = ErrorBackoff::new();
    while !stop.is_cancelled() {
        let space = lane.space.notified();
        let capacity = engine.buffer_limit(&lane);
        let buffered = lane.len();
        // Refill once the buffer is half empty, not after every pick: a fetch of a few
        // entries costs a round trip like a fetch of many, and the half left covers the wait.
        if buffered >= capacity || (buffered > 0 && buffered > capacity / 2) {
            tokio::select! {
                _ = space => continue,
                _ = stop.cancelled() => return,
            }
        }
        let req = FetchRequest {
            consumer: engine.consumer.clone(),
            queues: lane.queues.clone(),
            count: capacity - buffered,
            block: engine.config.block_timeout,
        };
        // Not raced against `stop`: a fetch dropped mid-flight may already have delivered
        // messages to this consumer, which would then wait for an idle reclaim. The fetch
        // ends within its block timeout; shutdown waits for it and gives back what it got.
        let fetched = engine.backends.queue.fetch(&req).await;
        match fetched {
            Ok(deliveries) => {
                backoff.reset();
                let got = !deliveries.is_empty();
                lane.push(deliveries);
                if got {
                    // Let the dispatcher, just woken on this thread, start them before the
                    // next fetch is sent: sending it wakes the connection's task, which would
                    // push the dispatcher out of the runtime's next-task slot and often onto
                    // the other thread (measured: 80 µs → 30 µs from fetch to begin, idle).
                    tokio::task::yield_now().await;
                }
            }
            Err(e) => {
                let pause = backoff.next();
                tracing::warn!(task_type = %lane.task_type, error = %e, ?pause, "fetch failed");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }
}

/// How many `begin` round trips a lane may have in flight: the dispatcher picks the next
/// batches while the state store answers for earlier ones. Four, since `begin` on Redis is a
/// pipeline of native commands: no-op tasks ran 7–12 % faster than with two (eight gained
/// nothing more; BENCHMARKS.md, eighth pass).
const BEGINS_IN_FLIGHT: u32 = 4;

/// Starts buffered tasks whenever a worker slot and a concurrency permit are free, and, for
/// quick types without a limit, begins up to `start_ahead` more while every worker is busy
/// (see [`crate::ManagerConfig::start_ahead`]); ready tasks take free slots first.
///
/// Returns once intake stops and every `begin` it sent has been answered, so the tasks those
/// started are registered as running (or ready) before shutdown looks.
pub(crate) async fn dispatch_loop(engine: Arc<Engine>, lane: Arc<Lane>) {
    let begins = Arc::new(Semaphore::new(BEGINS_IN_FLIGHT as usize));
    let backoff = Arc::new(Mutex::new(ErrorBackoff::new()));
    dispatch(&engine, &lane, &begins, &backoff).await;
    let _ = begins.acquire_many(BEGINS_IN_FLIGHT).await;
}

async fn dispatch(
    engine: &Arc<Engine>,
    lane: &Arc<Lane>,
    begins: &Arc<Semaphore>,
    begin_backoff: &Arc<Mutex<ErrorBackoff>>,
) {
    let stop = engine.stop_intake.clone();
    let mut backoff = ErrorBackoff::new();
    // Pause while the type is at its limit elsewhere in the cluster.
    let mut limit_wait = Duration::from_millis(1);
    loop {
        let work = lane.work.notified();
        // Ready tasks take whatever slots are free first (once intake stops, shutdown gives
        // them back instead).
        while lane.ready_len() > 0 && !stop.is_cancelled() {
            match engine.workers.clone().try_acquire_owned() {
                Ok(slot) => run_ready_or_free(engine, lane, slot),
                Err(_) => break,
            }
        }
        if lane.len() == 0 {
            if lane.ready_len() > 0 {
                // Nothing to begin: wait for a slot for the ready tasks.
                tokio::select! {
                    p = engine.workers.clone().acquire_owned() => match p {
                        Ok(slot) => run_ready_or_free(engine, lane, slot),
                        Err(_) => return,
                    },
                    _ = work => {}
                    _ = stop.cancelled() => return,
                }
                continue;
            }
            tokio::select! {
                _ = work => continue,
                _ = stop.cancelled() => return,
            }
        }
        if engine.completer_behind() {
            // Let the completer catch up before beginning more.
            let recorded = engine.recorded.notified();
            if engine.completer_behind() {
                tokio::select! {
                    _ = recorded => {}
                    _ = stop.cancelled() => return,
                }
            }
            continue;
        }
        let in_flight = tokio::select! {
            p = begins.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.cancelled() => return,
        };
        // Types without a limit take no permits: no limiter round trip on their hot path.
        let limited = engine.is_limited(&lane.task_type);
        let ahead_room = ahead_room(engine, lane, limited);
        let mut slots = Vec::new();
        if ahead_room == 0 {
            let taken = lane.ready_taken.notified();
            let slot = tokio::select! {
                p = engine.workers.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
                // Room to start another ahead.
                _ = taken => continue,
                _ = stop.cancelled() => return,
            };
            if lane.ready_len() > 0 {
                run_ready_or_free(engine, lane, slot);
                continue;
            }
            slots.push(slot);
        }
        // Read again: a begin in flight may have put deliveries back meanwhile.
        let waiting = lane.len();
        if lane.ready_len() == 0 {
            while slots.len() < waiting {
                match engine.workers.clone().try_acquire_owned() {
                    Ok(p) => slots.push(p),
                    Err(_) => break,
                }
            }
        }
        let limiter = &engine.backends.limiter;
        let holder = &engine.consumer.name;
        let granted = if !limited {
            slots.len()
        } else {
            match limiter
                .acquire(&lane.task_type, holder, slots.len() as u32)
                .await
            {
                Ok(n) => n as usize,
                Err(e) => {
                    drop(slots);
                    let pause = backoff.next();
                    tracing::warn!(task_type = %lane.task_type, error = %e, "limiter unavailable");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = stop.cancelled() => return,
                    }
                }
            }
        };
        if limited && granted == 0 {
            // At the limit: free the slots for other types and wait for a local release or
            // poll for a release elsewhere.
            drop(slots);
            let freed = lane.permit_freed.notified();
            tokio::select! {
                _ = freed => {}
                _ = tokio::time::sleep(limit_wait) => {}
                _ = stop.cancelled() => return,
            }
            limit_wait = (limit_wait * 2).min(Duration::from_millis(50));
            continue;
        }
        limit_wait = Duration::from_millis(1);
        backoff.reset();
        slots.truncate(granted);
        let ahead = ahead_room.min(waiting.saturating_sub(granted));
        let picked = lane.pick(granted + ahead);
        if picked.len() < granted {
            let extra = granted - picked.len();
            for slot in slots.drain(picked.len()..) {
                run_ready_or_free(engine, lane, slot);
            }
            if limited {
                let _ = limiter.release(&lane.task_type, holder, extra as u32).await;
            }
        }
        if picked.is_empty() {
            continue;
        }
        let started_ahead = picked.len() - slots.len();
        lane.ahead_in_flight
            .fetch_add(started_ahead, Ordering::Relaxed);
        tokio::spawn(begin_and_start(
            engine.clone(),
            lane.clone(),
            Picked {
                deliveries: picked,
                slots,
                limited,
                started_ahead,
            },
            begin_backoff.clone(),
            in_flight,
        ));
    }
}

/// How many more tasks `lane` may start ahead of a free worker now.
fn ahead_room(engine: &Engine, lane: &Lane, limited: bool) -> usize {
    if limited {
        return 0;
    }
    let limit = lane.ahead_limit(engine.config.workers, engine.config.start_ahead);
    limit.saturating_sub(lane.ready_len() + lane.ahead_in_flight.load(Ordering::Relaxed))
}

/// Deliveries picked for one `begin`: the first `slots.len()` have a worker slot, the other
/// `started_ahead` are started ahead.
struct Picked {
    deliveries: Vec<crate::queue::Delivery>,
    slots: Vec<OwnedSemaphorePermit>,
    limited: bool,
    started_ahead: usize,
}

/// Runs the oldest ready task of `lane` on `slot`, or frees the slot if none is ready.
pub(crate) fn run_ready_or_free(
    engine: &Arc<Engine>,
    lane: &Arc<Lane>,
    slot: OwnedSemaphorePermit,
) {
    match lane.take_ready(&engine.stop_intake) {
        Some(ready) => start(engine, lane, ready.delivery, ready.task, slot, false),
        None => drop(slot),
    }
}

/// Starts attempts of the picked tasks in the state store and runs those it may: on a slot
/// of their own, or (started ahead) on the next free one. On failure the deliveries go back
/// to the lane's buffer and this pauses (holding its in-flight permit), so a failing store is
/// not hammered.
async fn begin_and_start(
    engine: Arc<Engine>,
    lane: Arc<Lane>,
    picked: Picked,
    backoff: Arc<Mutex<ErrorBackoff>>,
    _in_flight: OwnedSemaphorePermit,
) {
    let Picked {
        deliveries,
        slots,
        limited,
        started_ahead,
    } = picked;
    let holder = &engine.consumer.name;
    let ids: Vec<TaskId> = deliveries
        .iter()
        .map(|d| d.message.task_id.clone())
        .collect();
    let begun = engine
        .backends
        .state
        .begin(&ids, holder, now_millis())
        .await;
    // Counted as in flight until they are ready (or back in the buffer), so the dispatcher
    // never starts more than `start_ahead` ahead.
    let landed = || {
        lane.ahead_in_flight
            .fetch_sub(started_ahead, Ordering::Relaxed)
    };
    match begun {
        Ok(begun) => {
            lock_mutex(&backoff).reset();
            let mut slots = slots.into_iter();
            for (delivery, begin) in deliveries.into_iter().zip(begun) {
                match begin {
                    Begin::Run(task) => match slots.next() {
                        Some(slot) => start(&engine, &lane, delivery, task, slot, limited),
                        None => lane.push_ready(super::lane::Ready { delivery, task }),
                    },
                    skip => skipped(&engine, &lane, delivery, skip, limited),
                }
            }
            landed();
            // Slots of skipped tasks go to ready ones.
            for slot in slots {
                run_ready_or_free(&engine, &lane, slot);
            }
        }
        Err(e) => {
            let n = slots.len() as u32;
            drop(slots);
            lane.put_back(deliveries);
            landed();
            if limited {
                let _ = engine
                    .backends
                    .limiter
                    .release(&lane.task_type, holder, n)
                    .await;
            }
            let pause = lock_mutex(&backoff).next();
            tracing::warn!(task_type = %lane.task_type, error = %e, ?pause, "could not start tasks");
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = engine.stop_intake.cancelled() => {}
            }
        }
    }
}

/// Acks the delivery of a task `begin` said not to run.
fn skipped(
    engine: &Engine,
    lane: &Lane,
    delivery: crate::queue::Delivery,
    begin: Begin,
    permit: bool,
) {
    if let Begin::Skip { id, status } = begin {
        tracing::debug!(task_id = %id, ?status, "skipping delivery of a task that is not runnable");
    }
    engine.send_done(run::Done {
        receipt: delivery.receipt,
        task_type: lane.task_type.clone(),
        completion: None,
        permit,
    });
}

/// Runs a begun task on `slot` (or dead-letters it if it is poison).
pub(crate) fn start(
    engine: &Arc<Engine>,
    lane: &Arc<Lane>,
    delivery: crate::queue::Delivery,
    task: Task,
    slot: OwnedSemaphorePermit,
    permit: bool,
) {
    let too_many_deliveries = delivery.delivery_count > engine.config.max_deliveries;
    let too_many_starts = task.attempts > task.max_retries.saturating_add(1);
    if too_many_deliveries || too_many_starts {
        let error = format!(
            "poison task: delivered {} times, started {} times, never completed",
            delivery.delivery_count, task.attempts
        );
        tracing::error!(task_id = %task.id, task_type = %task.task_type, %error, "dead-lettering");
        engine
            .counters
            .dead_lettered
            .fetch_add(1, Ordering::Relaxed);
        engine.send_done(run::Done {
            receipt: delivery.receipt,
            task_type: lane.task_type.clone(),
            completion: Some(super::completion(
                &task,
                crate::state::Outcome::Failed { error },
            )),
            permit,
        });
        run_ready_or_free(engine, lane, slot);
        return;
    }
    let receipt = delivery.receipt.clone();
    let task_id = task.id.clone();
    // Registered under the lock the run takes to deregister itself, so a run that ends at
    // once cannot leave a stale entry behind.
    let mut running = lock_mutex(&engine.running);
    let handle = tokio::spawn(run::run(
        engine.clone(),
        lane.clone(),
        task,
        delivery,
        slot,
        permit,
    ));
    running.insert(
        receipt,
        super::Running {
            task_id,
            task_type: lane.task_type.clone(),
            abort: handle.abort_handle(),
            permit,
        },
    );
}
