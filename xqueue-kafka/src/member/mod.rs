//! One member of a consumer group: an rdkafka consumer, the thread that polls it, and what it
//! has read and handed out.
//!
//! The poll thread alone touches the consumer (subscribe, poll, pause/resume, store, commit),
//! so rebalance callbacks, offset stores and pauses never race. Fetches and acks only touch
//! [`State`] under its mutex; the thread picks up their effects within one poll interval.

mod poll;
mod rebalance;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use tokio::sync::Notify;
use xqueue_core::{Consumer, Delivery, Error, Message, QueueName, Receipt, Result};

use crate::config::KafkaConfig;
use crate::error::{self, KIND};
use crate::offsets::PartitionTracker;

pub(crate) use rebalance::MemberContext;

/// A topic and partition.
type Tp = (String, i32);

/// A message read and waiting in a queue buffer.
#[derive(Debug)]
struct Buffered {
    partition: i32,
    offset: i64,
    message: Message,
}

/// What a member knows, shared by its poll thread and the async callers.
#[derive(Debug)]
pub(crate) struct State {
    /// Topics fetched from so far; the subscription follows it.
    wanted: BTreeSet<String>,
    /// Bumped whenever `wanted` grows.
    wanted_gen: u64,
    /// When `wanted` last grew.
    wanted_at: Instant,
    /// The `wanted_gen` the consumer is subscribed with.
    subscribed_gen: u64,
    /// The `subscribed_gen` of the last assignment received.
    assigned_gen: u64,
    /// Partitions this member owns.
    assigned: BTreeSet<Tp>,
    /// Messages read and not yet fetched, per topic.
    buffers: HashMap<String, VecDeque<Buffered>>,
    /// Offsets read and not yet committed, per partition owned.
    trackers: HashMap<Tp, PartitionTracker>,
    /// Partitions with completions whose commit position may have moved.
    dirty: BTreeSet<Tp>,
    /// Partitions paused because their topic's buffer is full.
    paused: BTreeSet<Tp>,
    /// Last fetch or ack.
    last_active: Instant,
    /// A fatal consumer error: the member is unusable.
    failure: Option<String>,
}

impl State {
    fn new() -> Self {
        let now = Instant::now();
        State {
            wanted: BTreeSet::new(),
            wanted_gen: 0,
            wanted_at: now,
            subscribed_gen: 0,
            assigned_gen: 0,
            assigned: BTreeSet::new(),
            buffers: HashMap::new(),
            trackers: HashMap::new(),
            dirty: BTreeSet::new(),
            paused: BTreeSet::new(),
            last_active: now,
            failure: None,
        }
    }

    /// Un-acked deliveries on `topic`.
    pub(crate) fn pending_on(&self, topic: &str) -> u64 {
        self.trackers
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|(_, tr)| tr.pending() as u64)
            .sum()
    }

    /// Messages read but not yet fetched on `topic`, `partition`.
    pub(crate) fn buffered_on(&self, topic: &str, partition: i32) -> u64 {
        self.buffers.get(topic).map_or(0, |b| {
            b.iter().filter(|m| m.partition == partition).count() as u64
        })
    }

    /// Un-acked deliveries, read position and stored commit position of a partition this
    /// member owns.
    pub(crate) fn partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Option<(u64, Option<i64>, Option<i64>)> {
        let tp = (topic.to_string(), partition);
        if !self.assigned.contains(&tp) {
            return None;
        }
        let tracker = self.trackers.get(&tp);
        Some((
            tracker.map_or(0, |t| t.pending() as u64),
            tracker.and_then(|t| t.next_read()),
            tracker.and_then(|t| t.stored()),
        ))
    }

    /// Whether the member fetched from `topic`.
    pub(crate) fn wants(&self, topic: &str) -> bool {
        self.wanted.contains(topic)
    }

    /// Milliseconds since the last fetch or ack.
    pub(crate) fn idle_ms(&self) -> u64 {
        self.last_active.elapsed().as_millis() as u64
    }
}

/// State, wake-ups and the stop flag, shared with the poll thread and its rebalance callbacks.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Woken when messages arrive or partitions are assigned.
    arrived: Notify,
    stop: AtomicBool,
    buffer_cap: usize,
    request_timeout: Duration,
    revoke_drain: Duration,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep going with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One group member of this process.
pub(crate) struct Member {
    shared: Arc<Shared>,
    /// Answered once the member has committed and left the group (before its client is
    /// destroyed, which librdkafka may take long over).
    left: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    /// Where the member's topics live.
    prefix: String,
}

impl Member {
    /// Creates the consumer and starts its poll thread. The member joins the group on its
    /// first subscription.
    pub(crate) fn start(cfg: &KafkaConfig, consumer: &Consumer) -> Result<Member> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::new()),
            arrived: Notify::new(),
            stop: AtomicBool::new(false),
            buffer_cap: cfg.buffer_per_queue,
            request_timeout: cfg.request_timeout,
            revoke_drain: cfg.revoke_drain.min(cfg.max_poll_interval / 2),
        });
        let context = MemberContext {
            shared: shared.clone(),
        };
        let kafka: BaseConsumer<MemberContext> =
            crate::client::member_config(cfg, &consumer.group, &consumer.name)
                .create_with_context(context)
                .map_err(|e| error::map("creating consumer", e))?;
        let thread_shared = shared.clone();
        let (left_tx, left_rx) = tokio::sync::oneshot::channel();
        let span = tracing::info_span!("kafka_member", backend = KIND, group = %consumer.group, consumer = %consumer.name);
        std::thread::Builder::new()
            .name(format!("xqueue-kafka-{}", consumer.name))
            .spawn(move || span.in_scope(|| poll::run(kafka, thread_shared, left_tx)))
            .map_err(|e| Error::Backend {
                backend: KIND,
                message: format!("starting the consumer thread: {e}"),
            })?;
        Ok(Member {
            shared,
            left: Mutex::new(Some(left_rx)),
            prefix: format!("{}.", cfg.topic_prefix),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Adds topics to the subscription; returns the generation that includes them.
    pub(crate) fn want(&self, topics: &[String]) -> u64 {
        let mut st = self.lock();
        let mut grew = false;
        for t in topics {
            grew |= st.wanted.insert(t.clone());
        }
        if grew {
            st.wanted_gen += 1;
            st.wanted_at = Instant::now();
        }
        st.wanted_gen
    }

    /// Fetches up to `count` buffered messages per queue, waiting as the contract says: up to
    /// `block`, plus (when the group has not yet assigned partitions for generation `gen`) up
    /// to `assignment_timeout` for the assignment.
    pub(crate) async fn fetch(
        &self,
        queues: &[(QueueName, String)],
        count: usize,
        block: Duration,
        gen: u64,
        assignment_timeout: Duration,
    ) -> Result<Vec<Delivery>> {
        let start = Instant::now();
        let mut deadline = start + block;
        let mut joined = false;
        loop {
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let mut st = self.lock();
                if let Some(failure) = &st.failure {
                    return Err(Error::Backend {
                        backend: KIND,
                        message: failure.clone(),
                    });
                }
                st.last_active = Instant::now();
                let out = take(&mut st, queues, count);
                if !out.is_empty() {
                    return Ok(out);
                }
                if !joined {
                    if st.assigned_gen >= gen {
                        joined = true;
                        deadline = deadline.min(Instant::now() + block);
                    } else if !block.is_zero() {
                        deadline = start + block.max(assignment_timeout);
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let _ = tokio::time::timeout(deadline - now, arrived).await;
        }
    }

    /// Marks deliveries done; returns how many were delivered and not yet done.
    pub(crate) fn complete(&self, receipts: &[Receipt]) -> u64 {
        let mut st = self.lock();
        st.last_active = Instant::now();
        let mut count = 0;
        for r in receipts {
            let Some((partition, offset)) = parse_tag(&r.tag) else {
                continue;
            };
            let tp = (self.topic(&r.queue), partition);
            if let Some(tracker) = st.trackers.get_mut(&tp) {
                if tracker.complete(offset) {
                    count += 1;
                    st.dirty.insert(tp);
                }
            }
        }
        count
    }

    /// The messages of deliveries still pending, with their receipts.
    pub(crate) fn pending_messages(&self, receipts: &[Receipt]) -> Vec<(Receipt, Message)> {
        let st = self.lock();
        receipts
            .iter()
            .filter_map(|r| {
                let (partition, offset) = parse_tag(&r.tag)?;
                let tracker = st.trackers.get(&(self.topic(&r.queue), partition))?;
                Some((r.clone(), tracker.delivered(offset)?.clone()))
            })
            .collect()
    }

    fn topic(&self, queue: &QueueName) -> String {
        format!("{}{}", self.prefix, queue)
    }

    /// Stops the poll thread; the receiver answers once the member committed what is done
    /// and left the group (`None` if another caller already waits for it).
    pub(crate) fn stop(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.left.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        // The thread finishes on its own: commit, leave the group, close.
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// The receipt tag of a message: `"{partition}:{offset}"`.
pub(crate) fn tag(partition: i32, offset: i64) -> String {
    format!("{partition}:{offset}")
}

fn parse_tag(tag: &str) -> Option<(i32, i64)> {
    let (p, o) = tag.split_once(':')?;
    Some((p.parse().ok()?, o.parse().ok()?))
}

/// Takes up to `count` buffered messages of each queue and marks them delivered.
fn take(st: &mut State, queues: &[(QueueName, String)], count: usize) -> Vec<Delivery> {
    let mut out = Vec::new();
    for (queue, topic) in queues {
        let Some(buf) = st.buffers.get_mut(topic) else {
            continue;
        };
        let n = count.min(buf.len());
        let taken: Vec<Buffered> = buf.drain(..n).collect();
        for b in taken {
            if let Some(tracker) = st.trackers.get_mut(&(topic.clone(), b.partition)) {
                tracker.deliver(b.offset, b.message.clone());
            }
            out.push(Delivery {
                receipt: Receipt {
                    queue: queue.clone(),
                    tag: tag(b.partition, b.offset),
                },
                message: b.message,
                delivery_count: 1,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message {
            task_id: xqueue_core::TaskId::generate(),
            task_type: "t".into(),
            priority: 5,
            enqueued_at: 0,
        }
    }

    fn buffer(st: &mut State, topic: &str, partition: i32, offsets: std::ops::Range<i64>) {
        let tracker = st
            .trackers
            .entry((topic.to_string(), partition))
            .or_default();
        for offset in offsets.clone() {
            tracker.read(offset);
        }
        let buf = st.buffers.entry(topic.to_string()).or_default();
        for offset in offsets {
            buf.push_back(Buffered {
                partition,
                offset,
                message: message(),
            });
        }
    }

    #[test]
    fn fetch_takes_up_to_count_from_every_queue() {
        let mut st = State::new();
        buffer(&mut st, "p.a", 0, 0..10);
        buffer(&mut st, "p.b", 1, 0..2);
        let queues = [
            (QueueName::raw("a"), "p.a".to_string()),
            (QueueName::raw("b"), "p.b".to_string()),
        ];
        let got = take(&mut st, &queues, 3);
        let from_a = got
            .iter()
            .filter(|d| d.receipt.queue.as_str() == "a")
            .count();
        let from_b = got
            .iter()
            .filter(|d| d.receipt.queue.as_str() == "b")
            .count();
        assert_eq!((from_a, from_b), (3, 2));
        assert_eq!(got[0].receipt.tag, "0:0");
        assert_eq!(st.pending_on("p.a"), 3);
        assert_eq!(st.buffers["p.a"].len(), 7);
    }

    #[test]
    fn tags_round_trip() {
        assert_eq!(parse_tag(&tag(3, 1234)), Some((3, 1234)));
        assert_eq!(parse_tag("x:1"), None);
        assert_eq!(parse_tag("12"), None);
    }
}
