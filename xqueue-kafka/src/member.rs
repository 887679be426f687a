//! One member of a consumer group: an rdkafka consumer, the thread that polls it, and what it
//! has read and handed out.
//!
//! The poll thread alone touches the consumer (subscribe, poll, pause/resume, store, commit),
//! so rebalance callbacks, offset stores and pauses never race. Fetches and acks only touch
//! [`State`] under its mutex; the thread picks up their effects within one poll interval.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;
use xqueue_core::{Consumer, Delivery, Error, Message, QueueName, Receipt, Result};

use crate::client::{log_error, log_line};
use crate::config::KafkaConfig;
use crate::error::{self, KIND};
use crate::offsets::PartitionTracker;

/// How long one `poll` blocks; bounds how late the thread notices stop, subscription changes
/// and offsets to store.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Subscription changes closer together than this are applied as one (one rebalance when a
/// worker pool starts a fetcher per task type).
const SUBSCRIBE_DEBOUNCE: Duration = Duration::from_millis(100);
/// Most messages taken from librdkafka per wake-up before the thread looks at its other work.
const POLL_BATCH: usize = 512;

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

    /// Partitions taken away: stop handing out their buffered messages, give deliveries in
    /// flight up to `revoke_drain` to finish, commit what is done and forget the rest (the
    /// next owner reads it again from the committed position).
    fn revoke(&self, consumer: &BaseConsumer<MemberContext>, revoked: &TopicPartitionList) {
        let tps: Vec<Tp> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        let lost = consumer.assignment_lost();
        {
            let mut st = self.lock();
            for tp in &tps {
                if let Some(buf) = st.buffers.get_mut(&tp.0) {
                    buf.retain(|m| m.partition != tp.1);
                }
                st.assigned.remove(tp);
                st.paused.remove(tp);
                st.dirty.remove(tp);
            }
        }
        let until = Instant::now() + self.revoke_drain;
        while !lost && Instant::now() < until {
            let in_flight: usize = {
                let st = self.lock();
                tps.iter()
                    .filter_map(|tp| st.trackers.get(tp))
                    .map(PartitionTracker::pending)
                    .sum()
            };
            if in_flight == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut store = TopicPartitionList::new();
        let mut commit = TopicPartitionList::new();
        {
            let mut st = self.lock();
            for tp in &tps {
                let Some(mut tracker) = st.trackers.remove(tp) else {
                    continue;
                };
                if let Some(pos) = tracker.advance() {
                    let _ = store.add_partition_offset(&tp.0, tp.1, Offset::Offset(pos));
                }
                if let Some(pos) = tracker.stored() {
                    let _ = commit.add_partition_offset(&tp.0, tp.1, Offset::Offset(pos));
                }
                let dropped = tracker.pending();
                if dropped > 0 {
                    tracing::info!(
                        backend = KIND,
                        topic = %tp.0,
                        partition = tp.1,
                        in_flight = dropped,
                        "partition revoked with deliveries in flight; they will be redelivered"
                    );
                }
            }
        }
        if lost {
            return;
        }
        if store.count() > 0 {
            if let Err(e) = consumer.store_offsets(&store) {
                tracing::debug!(backend = KIND, error = %e, "storing offsets on revoke");
            }
        }
        if commit.count() > 0 {
            if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                tracing::warn!(backend = KIND, error = %e, "committing offsets on revoke");
            }
        }
    }

    /// Partitions given to this member.
    fn assign(&self, consumer: &BaseConsumer<MemberContext>, assigned: &TopicPartitionList) {
        {
            let mut st = self.lock();
            for elem in assigned.elements() {
                st.assigned
                    .insert((elem.topic().to_string(), elem.partition()));
            }
            st.assigned_gen = st.subscribed_gen;
        }
        // librdkafka keeps a partition paused across unassign/assign: start it afresh.
        if assigned.count() > 0 {
            if let Err(e) = consumer.resume(assigned) {
                tracing::debug!(backend = KIND, error = %e, "resuming newly assigned partitions");
            }
        }
        self.arrived.notify_waiters();
    }
}

/// Rebalance callbacks and logging of a member's consumer.
pub(crate) struct MemberContext {
    shared: Arc<Shared>,
}

impl ClientContext for MemberContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_error(&error, reason);
    }
}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) => self.shared.revoke(consumer, tpl),
            Rebalance::Error(e) => tracing::warn!(backend = KIND, error = %e, "rebalance error"),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.shared.assign(consumer, tpl);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(backend = KIND, error = %e, partitions = offsets.count(), "commit failed");
        }
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
            .spawn(move || span.in_scope(|| run(kafka, thread_shared, left_tx)))
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

/// The poll thread.
fn run(
    consumer: BaseConsumer<MemberContext>,
    shared: Arc<Shared>,
    left: tokio::sync::oneshot::Sender<()>,
) {
    while !shared.stop.load(Ordering::SeqCst) {
        subscribe_if_needed(&consumer, &shared);
        store_done(&consumer, &shared);
        pause_or_resume(&consumer, &shared);
        poll_batch(&consumer, &shared);
    }
    shutdown(consumer, &shared, left);
}

fn subscribe_if_needed(consumer: &BaseConsumer<MemberContext>, shared: &Shared) {
    let (topics, gen) = {
        let st = shared.lock();
        if st.wanted_gen == st.subscribed_gen || st.wanted_at.elapsed() < SUBSCRIBE_DEBOUNCE {
            return;
        }
        (st.wanted.iter().cloned().collect::<Vec<_>>(), st.wanted_gen)
    };
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let result = consumer.subscribe(&refs);
    let mut st = shared.lock();
    st.subscribed_gen = gen;
    match result {
        Ok(()) => tracing::debug!(backend = KIND, topics = ?topics, "subscribed"),
        Err(e) => st.failure = Some(format!("subscribing to {topics:?}: {e}")),
    }
}

/// Stores the commit position of partitions with new completions; auto-commit sends them.
fn store_done(consumer: &BaseConsumer<MemberContext>, shared: &Shared) {
    let tpl = {
        let mut st = shared.lock();
        if st.dirty.is_empty() {
            return;
        }
        let dirty = std::mem::take(&mut st.dirty);
        let mut tpl = TopicPartitionList::new();
        for tp in dirty {
            if let Some(pos) = st.trackers.get_mut(&tp).and_then(|t| t.advance()) {
                let _ = tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(pos));
            }
        }
        tpl
    };
    if tpl.count() > 0 {
        if let Err(e) = consumer.store_offsets(&tpl) {
            // A partition revoked meanwhile: its new owner re-reads from the committed position.
            tracing::debug!(backend = KIND, error = %e, "storing offsets");
        }
    }
}

/// Pauses the partitions of topics whose buffer is full and resumes them once it is half empty.
fn pause_or_resume(consumer: &BaseConsumer<MemberContext>, shared: &Shared) {
    let (pause, resume) = {
        let mut st = shared.lock();
        let cap = shared.buffer_cap;
        let mut pause = Vec::new();
        let mut resume = Vec::new();
        for tp in &st.assigned {
            let len = st.buffers.get(&tp.0).map_or(0, VecDeque::len);
            let paused = st.paused.contains(tp);
            if !paused && len >= cap {
                pause.push(tp.clone());
            } else if paused && len <= cap / 2 {
                resume.push(tp.clone());
            }
        }
        for tp in &pause {
            st.paused.insert(tp.clone());
        }
        for tp in &resume {
            st.paused.remove(tp);
        }
        (pause, resume)
    };
    for (list, op) in [(pause, "pause"), (resume, "resume")] {
        if list.is_empty() {
            continue;
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &list {
            tpl.add_partition(t, *p);
        }
        let result = if op == "pause" {
            consumer.pause(&tpl)
        } else {
            consumer.resume(&tpl)
        };
        if let Err(e) = result {
            tracing::warn!(backend = KIND, error = %e, "{op} of {} partitions", list.len());
        }
    }
}

/// Polls once (blocking up to [`POLL_INTERVAL`]) and then takes what is ready without waiting.
fn poll_batch(consumer: &BaseConsumer<MemberContext>, shared: &Shared) {
    let mut got = 0;
    let mut timeout = POLL_INTERVAL;
    while got < POLL_BATCH {
        match consumer.poll(timeout) {
            None => break,
            Some(Ok(m)) => {
                got += 1;
                let decoded = m
                    .payload()
                    .map(serde_json::from_slice::<Message>)
                    .transpose();
                let tp = (m.topic().to_string(), m.partition());
                let offset = m.offset();
                let mut st = shared.lock();
                let tracker = st.trackers.entry(tp.clone()).or_default();
                match decoded {
                    Ok(Some(message)) => {
                        tracker.read(offset);
                        let buf = st.buffers.entry(tp.0).or_default();
                        buf.push_back(Buffered {
                            partition: tp.1,
                            offset,
                            message,
                        });
                        if buf.len() >= shared.buffer_cap {
                            // Pause this queue before reading further ahead.
                            break;
                        }
                    }
                    Ok(None) | Err(_) => {
                        tracing::warn!(
                            backend = KIND,
                            topic = %tp.0,
                            partition = tp.1,
                            offset,
                            "skipping a message that is not an XQueue message"
                        );
                        tracker.skip(offset);
                        st.dirty.insert(tp);
                    }
                }
            }
            Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                shared.lock().failure = Some(format!("fatal consumer error: {code}"));
                break;
            }
            Some(Err(e)) => {
                tracing::warn!(backend = KIND, error = %e, "consumer error");
                break;
            }
        }
        timeout = Duration::ZERO;
    }
    if got > 0 {
        shared.arrived.notify_waiters();
    }
}

/// Commits what is done and leaves the group. Deliveries still pending are redelivered to
/// the group from the committed position.
///
/// Unsubscribing revokes the assignment, and the revoke callback commits the stored positions
/// synchronously. Positions are stored once each (storing them again right before the close
/// made librdkafka 2.12's destroy hang, waiting for a broker thread, against tansu).
fn shutdown(
    consumer: BaseConsumer<MemberContext>,
    shared: &Shared,
    left: tokio::sync::oneshot::Sender<()>,
) {
    store_done(&consumer, shared);
    consumer.unsubscribe();
    let until = Instant::now() + shared.request_timeout.min(Duration::from_secs(10));
    while Instant::now() < until {
        consumer.poll(POLL_INTERVAL);
        if consumer.assignment().map_or(true, |a| a.count() == 0) {
            break;
        }
    }
    let _ = left.send(());
    // Dropping closes the consumer: it leaves the group and waits for librdkafka to finish.
    drop(consumer);
    tracing::debug!(backend = KIND, "left the group");
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
