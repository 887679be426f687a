//! Starting submitted tasks on this instance's idle workers in the submit's own round trip.
//!
//! An idle worker otherwise waits for three hops after a submit: the store wakes the lane's
//! blocked fetch, the dispatcher sends a `begin`, and its answer comes back. When the queue
//! backend is also the state store, the submit itself can deliver the new messages to this
//! instance's consumer and begin them (see [`crate::StateStore::insert_published`]); the
//! handler then starts as soon as the submit returns.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::lane::Ready;
use super::{dispatch, Engine, Lane};
use crate::state::{Take, Taken};
use crate::task::{now_millis, Task, TaskStatus};

/// Free worker slots held for the tasks of one submit, and what the submit may take with them.
pub(crate) struct Reservation {
    lane: Arc<Lane>,
    slots: Vec<OwnedSemaphorePermit>,
    pub take: Take,
}

impl Engine {
    /// Holds free worker slots for the submitted `tasks` of one queue, when this instance can
    /// run them at once: the pool is running and the option is on, the tasks are `pending`,
    /// and their type's lane is idle (nothing buffered or started ahead, so nothing older is
    /// waiting here) and has no concurrency limit (a permit takes a limiter round trip).
    /// Takes the first such queue of the batch; `None` when there is none or no slot is free.
    pub fn reserve_for_submit(&self, tasks: &[Task]) -> Option<Reservation> {
        if !self.config.start_on_submit
            || !self.is_started.load(Ordering::SeqCst)
            || self.stop_intake.is_cancelled()
        {
            return None;
        }
        let (first, lane) = tasks.iter().find_map(|t| {
            let lane = self.lane(&t.task_type)?;
            let idle = lane.len() == 0 && lane.ready_len() == 0;
            let eligible =
                t.status == TaskStatus::Pending && idle && !self.is_limited(&t.task_type);
            eligible.then_some((t, lane))
        })?;
        let queue = first.queue();
        let wanted = tasks.iter().filter(|t| t.queue() == queue).count();
        let mut slots = Vec::new();
        while slots.len() < wanted {
            match self.workers.clone().try_acquire_owned() {
                Ok(slot) => slots.push(slot),
                Err(_) => break,
            }
        }
        if slots.is_empty() {
            return None;
        }
        let take = Take {
            consumer: self.consumer.clone(),
            queue,
            count: slots.len(),
            now: now_millis(),
        };
        Some(Reservation { lane, slots, take })
    }

    /// Runs what a submit took with `reservation`: tasks it began on the held slots, older
    /// deliveries through the lane's buffer like fetched ones. Slots left over are freed. If
    /// shutdown began meanwhile, everything taken is given back instead.
    pub async fn start_taken(self: &Arc<Self>, reservation: Reservation, taken: Vec<Taken>) {
        let Reservation {
            lane, mut slots, ..
        } = reservation;
        if self.stop_intake.is_cancelled() {
            let ids: Vec<_> = taken
                .iter()
                .filter_map(|t| t.task.as_ref().map(|task| task.id.clone()))
                .collect();
            let receipts: Vec<_> = taken.iter().map(|t| t.delivery.receipt.clone()).collect();
            drop(slots);
            self.give_back(&ids, &receipts, "tasks taken at submit")
                .await;
            return;
        }
        let mut fetched = Vec::new();
        for Taken { delivery, task } in taken {
            match task {
                Some(task) => match slots.pop() {
                    Some(slot) => {
                        self.counters
                            .started_on_submit
                            .fetch_add(1, Ordering::Relaxed);
                        dispatch::start(self, &lane, delivery, task, slot, false);
                    }
                    // Never more begun than slots held; should it happen, the next free
                    // worker runs it.
                    None => lane.push_ready(Ready { delivery, task }),
                },
                None => fetched.push(delivery),
            }
        }
        drop(slots);
        lane.push(fetched);
    }
}
