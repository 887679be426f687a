//! The poll thread of a member: subscription, polling, pausing, offset stores, leaving.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use xqueue_core::Message;

use super::{Buffered, MemberContext, Shared};
use crate::error::KIND;

/// How long one `poll` blocks; bounds how late the thread notices stop, subscription changes
/// and offsets to store.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Subscription changes closer together than this are applied as one (one rebalance when a
/// worker pool starts a fetcher per task type).
const SUBSCRIBE_DEBOUNCE: Duration = Duration::from_millis(100);
/// How long one `poll` blocks while a partition is paused: a paused partition's buffer drains
/// while the thread waits, and it resumes only when the thread looks again. Waiting the full
/// [`POLL_INTERVAL`] there left a busy pool without work for most of every refill (Kafka
/// processing was bound near 1,000 buffered messages per ~25 ms, with both cores mostly idle).
const PAUSED_POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Most messages taken from librdkafka per wake-up before the thread looks at its other work.
const POLL_BATCH: usize = 512;

/// The poll thread.
pub(super) fn run(
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

/// Polls once (blocking up to [`POLL_INTERVAL`], or [`PAUSED_POLL_INTERVAL`] while a
/// partition is paused) and then takes what is ready without waiting.
fn poll_batch(consumer: &BaseConsumer<MemberContext>, shared: &Shared) {
    let mut got = 0;
    let mut timeout = if shared.lock().paused.is_empty() {
        POLL_INTERVAL
    } else {
        PAUSED_POLL_INTERVAL
    };
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
