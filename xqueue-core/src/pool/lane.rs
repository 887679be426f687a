//! A lane: the buffer of fetched-but-not-started deliveries of one task type, and the tasks
//! started ahead of a free worker.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::handler::{HandlerOptions, TaskHandler};
use crate::queue::{Delivery, Receipt};
use crate::task::{QueueName, Task};

/// Every this-many picks, the oldest buffered delivery goes first regardless of priority.
pub(crate) const FIFO_EVERY: u64 = 4;

/// About the longest a task started ahead should wait for a worker: a lane starts ahead only
/// as many tasks as its workers get through in this time at the type's recent mean run time
/// (none when runs take this long or longer). See [`crate::ManagerConfig::start_ahead`].
pub(crate) const AHEAD_WAIT: Duration = Duration::from_millis(1);

/// About how much work a quick type's lane holds in its buffer beyond [`BUFFER_FLOOR`]: as
/// many deliveries as its workers get through in this time at the type's recent mean run
/// time. See [`crate::ManagerConfig::batch_size`].
pub(crate) const BUFFER_WAIT: Duration = Duration::from_millis(5);

/// What every lane may buffer (within `batch_size`), whatever its run time: a backlog is
/// ordered by priority within the buffer, so a smaller one would let low priorities through
/// (each fetch takes from every priority). Deliveries in one instance's buffer wait for it
/// even while other instances' workers are idle, so slow types buffer no more than this.
pub(crate) const BUFFER_FLOOR: usize = 50;

/// A task whose attempt has begun in the state store, waiting for a free worker.
pub(crate) struct Ready {
    pub delivery: Delivery,
    pub task: Task,
}

/// One task type's handler, settings and local buffer.
pub(crate) struct Lane {
    pub task_type: String,
    pub handler: Arc<dyn TaskHandler>,
    pub options: HandlerOptions,
    pub queues: Vec<QueueName>,
    buffer: Mutex<Buffer>,
    /// The buffer gained deliveries.
    pub work: Notify,
    /// The buffer has room again.
    pub space: Notify,
    /// A concurrency permit of this type was released by this instance.
    pub permit_freed: Notify,
    /// Tasks started ahead of a free worker, oldest first.
    ready: Mutex<VecDeque<Ready>>,
    /// Tasks being started ahead whose `begin` has not been answered yet.
    pub ahead_in_flight: AtomicUsize,
    /// A ready task went to a worker: there is room to start another ahead.
    pub ready_taken: Notify,
    /// Mean run time of this type's handlers in µs, weighted to the recent ones; `u64::MAX`
    /// until the first run ends.
    run_micros: AtomicU64,
}

/// The fetched deliveries of a lane, in no order: [`Buffer::pick`] orders them.
#[derive(Default)]
struct Buffer {
    items: Vec<Buffered>,
    /// The receipts of `items`, so a delivery fetched twice is buffered once.
    held: HashSet<Receipt>,
    picks: u64,
    /// Tie-breakers: pushed deliveries count up, deliveries put back count down.
    next_seq: i64,
    front_seq: i64,
}

struct Buffered {
    delivery: Delivery,
    arrived: Instant,
    /// The task id as a number (UUIDv7: its creation time first), 0 if it is not a UUID.
    id_order: u128,
    seq: i64,
}

impl Buffered {
    /// Oldest first: by arrival here, then by enqueue time, then by task id (ids sort by
    /// creation time), then in the order received. One fetch brings every priority band at
    /// once, high band first, so the order received alone would make the high-priority tasks
    /// of a burst look older than the low ones submitted before them.
    fn age(&self) -> (Instant, u64, u128, i64) {
        (
            self.arrived,
            self.delivery.message.enqueued_at,
            self.id_order,
            self.seq,
        )
    }
}

impl Buffer {
    fn add(&mut self, delivery: Delivery, arrived: Instant, front: bool) {
        if !self.held.insert(delivery.receipt.clone()) {
            return;
        }
        let seq = if front {
            self.front_seq -= 1;
            self.front_seq
        } else {
            self.next_seq += 1;
            self.next_seq
        };
        let id_order =
            uuid::Uuid::try_parse(delivery.message.task_id.as_str()).map_or(0, |u| u.as_u128());
        self.items.push(Buffered {
            delivery,
            arrived,
            id_order,
            seq,
        });
    }

    /// Takes up to `n` deliveries in pick order (see [`Lane::pick`]). Sorts the buffer once
    /// per call, by priority and by age, and walks both orders: O(len · log len) however
    /// many it takes, not a scan of the buffer per pick.
    fn pick(&mut self, n: usize) -> Vec<Delivery> {
        let n = n.min(self.items.len());
        if n == 0 {
            return Vec::new();
        }
        let items = &self.items;
        let mut by_age: Vec<usize> = (0..items.len()).collect();
        by_age.sort_unstable_by_key(|&i| items[i].age());
        let mut by_priority = by_age.clone();
        // Stable: oldest first among equal priorities.
        by_priority.sort_by_key(|&i| u8::MAX - items[i].delivery.message.priority);
        let mut taken = vec![false; items.len()];
        let mut order = Vec::with_capacity(n);
        let (mut oldest, mut highest) = (by_age.iter(), by_priority.iter());
        while order.len() < n {
            self.picks += 1;
            let next = if self.picks % FIFO_EVERY == 0 {
                &mut oldest
            } else {
                &mut highest
            };
            let i = *next
                .find(|&&i| !taken[i])
                .expect("fewer taken than buffered");
            taken[i] = true;
            order.push(i);
        }
        let mut slots: Vec<Option<Buffered>> = std::mem::take(&mut self.items)
            .into_iter()
            .map(Some)
            .collect();
        let out: Vec<Delivery> = order
            .into_iter()
            .map(|i| slots[i].take().expect("taken once").delivery)
            .collect();
        self.items = slots.into_iter().flatten().collect();
        for d in &out {
            self.held.remove(&d.receipt);
        }
        out
    }
}

impl Lane {
    pub fn new(handler: Arc<dyn TaskHandler>, options: HandlerOptions) -> Self {
        let task_type = handler.task_type().to_owned();
        Lane {
            queues: QueueName::all_for_type(&task_type),
            task_type,
            handler,
            options,
            buffer: Mutex::new(Buffer::default()),
            work: Notify::new(),
            space: Notify::new(),
            permit_freed: Notify::new(),
            ready: Mutex::new(VecDeque::new()),
            ahead_in_flight: AtomicUsize::new(0),
            ready_taken: Notify::new(),
            run_micros: AtomicU64::new(u64::MAX),
        }
    }

    fn ready_lock(&self) -> MutexGuard<'_, VecDeque<Ready>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records how long a handler ran.
    pub fn observe_run(&self, took: Duration) {
        let took = took.as_micros().min(u64::MAX as u128 - 1) as u64;
        let old = self.run_micros.load(Ordering::Relaxed);
        // A lost update between two runs ending at once only skips one sample.
        let new = if old == u64::MAX {
            took
        } else {
            (old * 7 + took) / 8
        };
        self.run_micros.store(new, Ordering::Relaxed);
    }

    /// Most tasks to have started ahead with `workers` workers: as many as they finish within
    /// [`AHEAD_WAIT`] at the recent mean run time, at most `cap`; none before the first run.
    pub fn ahead_limit(&self, workers: usize, cap: usize) -> usize {
        self.runs_within(AHEAD_WAIT, workers).unwrap_or(0).min(cap)
    }

    /// Most deliveries to buffer with `workers` workers: as many as they finish within
    /// [`BUFFER_WAIT`] at the recent mean run time, at least [`BUFFER_FLOOR`] (also before
    /// the first run), at most `cap` (and at least 1).
    pub fn buffer_limit(&self, workers: usize, cap: usize) -> usize {
        self.runs_within(BUFFER_WAIT, workers)
            .unwrap_or(0)
            .max(BUFFER_FLOOR)
            .min(cap)
            .max(1)
    }

    /// How many runs `workers` workers finish within `wait` at the recent mean run time;
    /// `None` before the first run ends.
    fn runs_within(&self, wait: Duration, workers: usize) -> Option<usize> {
        let mean = self.run_micros.load(Ordering::Relaxed);
        if mean == u64::MAX {
            return None;
        }
        let per_worker = wait.as_micros() as u64 / mean.max(1);
        Some(
            usize::try_from(per_worker)
                .unwrap_or(usize::MAX)
                .saturating_mul(workers),
        )
    }

    /// Tasks started ahead and waiting for a worker.
    pub fn ready_len(&self) -> usize {
        self.ready_lock().len()
    }

    /// Queues a started task for the next free worker, and wakes the dispatcher.
    pub fn push_ready(&self, ready: Ready) {
        self.ready_lock().push_back(ready);
        self.work.notify_one();
    }

    /// The oldest ready task, unless intake has stopped (shutdown gives those back).
    pub fn take_ready(&self, stop: &CancellationToken) -> Option<Ready> {
        let mut ready = self.ready_lock();
        if stop.is_cancelled() {
            return None;
        }
        let next = ready.pop_front();
        drop(ready);
        if next.is_some() {
            self.ready_taken.notify_one();
        }
        next
    }

    /// Takes every ready task (shutdown).
    pub fn drain_ready(&self) -> Vec<Ready> {
        self.ready_lock().drain(..).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Adds deliveries, skipping any whose receipt is already held here.
    pub fn push(&self, deliveries: Vec<Delivery>) {
        if deliveries.is_empty() {
            return;
        }
        let now = Instant::now();
        {
            let mut b = self.lock();
            for d in deliveries {
                b.add(d, now, false);
            }
        }
        self.work.notify_one();
    }

    /// Puts deliveries back at the front (a dispatch that could not start them).
    pub fn put_back(&self, deliveries: Vec<Delivery>) {
        let mut b = self.lock();
        let epoch = b
            .items
            .iter()
            .map(|x| x.arrived)
            .min()
            .unwrap_or_else(Instant::now);
        for d in deliveries {
            b.add(d, epoch, true);
        }
        drop(b);
        self.work.notify_one();
    }

    /// Takes up to `n` deliveries by the priority policy: the highest priority first (oldest
    /// first among equals), except that every [`FIFO_EVERY`]th pick takes the oldest, so
    /// low priorities always progress.
    pub fn pick(&self, n: usize) -> Vec<Delivery> {
        let out = self.lock().pick(n);
        if !out.is_empty() {
            self.space.notify_one();
        }
        out
    }

    /// Takes every buffered delivery (shutdown).
    pub fn drain(&self) -> Vec<Delivery> {
        let mut b = self.lock();
        b.held.clear();
        std::mem::take(&mut b.items)
            .into_iter()
            .map(|x| x.delivery)
            .collect()
    }

    /// Receipts of the buffered deliveries and of the ready tasks.
    pub fn receipts(&self) -> Vec<Receipt> {
        let mut out: Vec<Receipt> = self
            .lock()
            .items
            .iter()
            .map(|x| x.delivery.receipt.clone())
            .collect();
        out.extend(self.ready_lock().iter().map(|r| r.delivery.receipt.clone()));
        out
    }

    /// Whether `receipt` is buffered here or is a ready task's.
    pub fn holds(&self, receipt: &Receipt) -> bool {
        self.lock().held.contains(receipt)
            || self
                .ready_lock()
                .iter()
                .any(|r| &r.delivery.receipt == receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::TaskError;
    use crate::task::{Message, Task, TaskId};
    use async_trait::async_trait;
    use serde_json::Value;

    struct Noop;
    #[async_trait]
    impl TaskHandler for Noop {
        fn task_type(&self) -> &str {
            "t"
        }
        async fn handle(&self, _: &Task) -> Result<Value, TaskError> {
            Ok(Value::Null)
        }
    }

    /// A delivery of task `task_id` on `queue`, with receipt tag `tag`.
    fn delivery(queue: &str, tag: String, task_id: TaskId, priority: u8, at: u64) -> Delivery {
        Delivery {
            receipt: Receipt {
                queue: QueueName::raw(queue),
                tag,
            },
            message: Message {
                task_id,
                task_type: "t".into(),
                priority,
                enqueued_at: at,
            },
            delivery_count: 1,
        }
    }

    fn d(tag: u32, priority: u8) -> Delivery {
        delivery(
            "t.normal",
            tag.to_string(),
            TaskId::generate(),
            priority,
            tag as u64,
        )
    }

    #[test]
    fn picks_highest_priority_but_lets_the_oldest_through() {
        let lane = Lane::new(Arc::new(Noop), HandlerOptions::default());
        // One old low-priority task, then a stream of high-priority ones.
        lane.push(vec![d(0, 0)]);
        lane.push((1..=20).map(|i| d(i, 9)).collect());
        let order: Vec<u8> = (0..8).map(|_| lane.pick(1)[0].message.priority).collect();
        // Three highs, then the oldest (the low one) on the fourth pick.
        assert_eq!(&order[..4], &[9, 9, 9, 0]);
        assert!(order[4..].iter().all(|p| *p == 9));
    }

    #[test]
    fn one_pick_of_many_takes_what_many_picks_of_one_would() {
        let mixed = || -> Vec<Delivery> { (0..60).map(|i| d(i, (i * 7 % 10) as u8)).collect() };
        let (batch, single) = (
            Lane::new(Arc::new(Noop), HandlerOptions::default()),
            Lane::new(Arc::new(Noop), HandlerOptions::default()),
        );
        batch.push(mixed());
        single.push(mixed());
        let tags =
            |ds: Vec<Delivery>| -> Vec<String> { ds.into_iter().map(|d| d.receipt.tag).collect() };
        let mut one_by_one = Vec::new();
        for _ in 0..25 {
            one_by_one.extend(tags(single.pick(1)));
        }
        assert_eq!(tags(batch.pick(25)), one_by_one);
        // Highest priority first, oldest first among equals; every fourth the oldest.
        assert_eq!(&one_by_one[..4], &["7", "17", "27", "0"]);
        assert_eq!(batch.len(), 35);
        assert_eq!(tags(batch.pick(100)), tags(single.pick(100)));
        assert_eq!(batch.len(), 0);
    }

    #[test]
    fn the_oldest_of_one_fetch_is_the_first_submitted_whatever_its_band() {
        let lane = Lane::new(Arc::new(Noop), HandlerOptions::default());
        let at = |id: TaskId, priority: u8| {
            let band = if priority > 6 { "t.high" } else { "t.low" };
            delivery(band, id.as_str().into(), id, priority, 1000)
        };
        // Lows submitted first, in the same millisecond as the highs; the fetch lists the
        // high band first.
        let lows: Vec<TaskId> = (0..3).map(|_| TaskId::generate()).collect();
        let highs: Vec<TaskId> = (0..6).map(|_| TaskId::generate()).collect();
        let mut fetched: Vec<Delivery> = highs.iter().map(|id| at(id.clone(), 9)).collect();
        fetched.extend(lows.iter().map(|id| at(id.clone(), 0)));
        lane.push(fetched);
        let order: Vec<u8> = lane
            .pick(9)
            .into_iter()
            .map(|d| d.message.priority)
            .collect();
        assert_eq!(
            order,
            [9, 9, 9, 0, 9, 9, 9, 0, 0],
            "every fourth pick is the oldest: a low"
        );
    }

    #[test]
    fn deliveries_put_back_go_first_and_a_picked_receipt_can_come_again() {
        let lane = Lane::new(Arc::new(Noop), HandlerOptions::default());
        lane.push((0..4).map(|i| d(i, 5)).collect());
        let first = lane.pick(2);
        lane.push(vec![d(9, 5)]);
        lane.put_back(first);
        let order: Vec<String> = lane.pick(10).into_iter().map(|d| d.receipt.tag).collect();
        assert_eq!(order, ["0", "1", "2", "3", "9"]);
        // Picked receipts are no longer held: a redelivery of one is buffered again.
        lane.push(vec![d(0, 5)]);
        assert_eq!(lane.len(), 1);
    }

    #[test]
    fn starts_ahead_what_the_workers_reach_within_a_millisecond() {
        let lane = Lane::new(Arc::new(Noop), HandlerOptions::default());
        assert_eq!(lane.ahead_limit(10, 50), 0, "nothing before the first run");
        lane.observe_run(Duration::from_micros(500));
        assert_eq!(lane.ahead_limit(10, 50), 20, "two runs per worker per ms");
        assert_eq!(lane.ahead_limit(10, 5), 5, "capped");
        for _ in 0..40 {
            lane.observe_run(Duration::from_millis(3));
        }
        assert_eq!(lane.ahead_limit(10, 50), 0, "slow runs start nothing ahead");
        for _ in 0..40 {
            lane.observe_run(Duration::from_micros(20));
        }
        assert_eq!(lane.ahead_limit(10, 50), 50, "quick again");
    }

    #[test]
    fn quick_types_buffer_what_the_workers_reach_within_five_milliseconds() {
        let lane = Lane::new(Arc::new(Noop), HandlerOptions::default());
        assert_eq!(
            lane.buffer_limit(10, 200),
            50,
            "the floor before the first run"
        );
        assert_eq!(lane.buffer_limit(10, 4), 4, "capped");
        lane.observe_run(Duration::from_micros(200));
        assert_eq!(
            lane.buffer_limit(10, 200),
            200,
            "25 runs per worker, 250: capped"
        );
        assert_eq!(lane.buffer_limit(4, 200), 100, "25 runs per worker");
        for _ in 0..40 {
            lane.observe_run(Duration::from_millis(50));
        }
        assert_eq!(lane.buffer_limit(10, 200), 50, "slow runs: the floor");
        for _ in 0..60 {
            lane.observe_run(Duration::from_micros(20));
        }
        assert_eq!(lane.buffer_limit(10, 200), 200, "quick again: the cap");
        assert_eq!(lane.buffer_limit(0, 0), 1, "never nothing");
    }

    #[test]
    fn duplicate_receipts_are_buffered_once() {
        let lane = Lane::new(Arc::new(Noop), HandlerOptions::default());
        lane.push(vec![d(1, 5), d(1, 5)]);
        assert_eq!(lane.len(), 1);
        assert!(lane.holds(&d(1, 5).receipt));
    }
}
