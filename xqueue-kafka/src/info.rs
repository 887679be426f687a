//! [`QueueBackend::info`](xqueue_core::QueueBackend::info) for Kafka: watermarks, committed
//! offsets and group members, merged with what this process's members hold.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};
use xqueue_core::{ConsumerInfo, PartitionInfo, QueueInfo, QueueName, Result};

use crate::backend::KafkaBackend;
use crate::client::TracingContext;
use crate::error::{self, KIND};

/// What the brokers say about one topic.
struct TopicSnapshot {
    /// `(partition, low, high, committed)`.
    partitions: Vec<(i32, i64, i64, Option<i64>)>,
}

/// What the brokers say about the group: `(member name, subscribed topics if known)`.
type Members = Vec<(String, Option<Vec<String>>)>;

/// Describes `queues` as seen by `group`.
///
/// # Behavior
/// - `length` is the messages stored (high minus low watermark, summed over partitions).
/// - `partitions[].committed` is the group's committed offset, or the position this process
///   has stored and will commit within `commit_interval`, whichever is further.
/// - `pending` counts un-acked deliveries held by this process's members; `waiting` is the
///   rest of the lag (a remote member's in-flight messages count as waiting).
/// - `consumers` lists group members subscribed to the queue (as the broker reports them,
///   plus this process's members of the group), with `pending` and `idle_ms` known only for
///   this process's members.
/// - A queue whose topic does not exist yet is reported empty.
pub(crate) async fn info(
    backend: &KafkaBackend,
    group: &str,
    queues: &[QueueName],
) -> Result<Vec<QueueInfo>> {
    let inspector = backend.inspector(group)?;
    let topics: Vec<String> = queues
        .iter()
        .map(|q| backend.inner.cfg.topic(q.as_str()))
        .collect();
    let timeout = backend.inner.cfg.request_timeout;
    let (snapshots, members) = {
        let topics = topics.clone();
        let group = backend.inner.cfg.group_id(group);
        tokio::task::spawn_blocking(move || read_brokers(&inspector, &group, &topics, timeout))
            .await
            .map_err(|e| error::join("reading queue info", e))??
    };
    let mut out = Vec::with_capacity(queues.len());
    for ((queue, topic), snapshot) in queues.iter().zip(&topics).zip(snapshots) {
        out.push(describe(backend, group, queue, topic, snapshot, &members));
    }
    Ok(out)
}

fn read_brokers(
    inspector: &BaseConsumer<TracingContext>,
    group: &str,
    topics: &[String],
    timeout: Duration,
) -> Result<(Vec<Option<TopicSnapshot>>, Members)> {
    // The inspector never polls for messages; serve its queued events (logs, errors) here.
    while inspector.poll(Duration::ZERO).is_some() {}
    let mut snapshots = Vec::with_capacity(topics.len());
    for topic in topics {
        let md = inspector
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| error::map(&format!("metadata of {topic}"), e))?;
        let Some(t) = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none())
        else {
            snapshots.push(None);
            continue;
        };
        let mut tpl = TopicPartitionList::new();
        let mut partitions = Vec::new();
        for p in t.partitions() {
            let (low, high) = inspector
                .fetch_watermarks(topic, p.id(), timeout)
                .map_err(|e| error::map(&format!("watermarks of {topic}"), e))?;
            partitions.push((p.id(), low, high, None));
            tpl.add_partition(topic, p.id());
        }
        partitions.sort_by_key(|p| p.0);
        // A group that never committed answers with no offsets, not an error.
        if let Ok(committed) = inspector.committed_offsets(tpl, timeout) {
            for elem in committed.elements() {
                if let Offset::Offset(o) = elem.offset() {
                    if let Some(p) = partitions.iter_mut().find(|p| p.0 == elem.partition()) {
                        p.3 = Some(o);
                    }
                }
            }
        }
        snapshots.push(Some(TopicSnapshot { partitions }));
    }
    let members = match inspector.fetch_group_list(Some(group), timeout) {
        Ok(list) => list
            .groups()
            .iter()
            .filter(|g| g.name() == group)
            .flat_map(|g| g.members())
            .map(|m| {
                (
                    m.client_id().to_string(),
                    m.metadata().and_then(subscribed_topics),
                )
            })
            .collect(),
        Err(e) => {
            tracing::debug!(backend = KIND, error = %e, "describing group {group}");
            Vec::new()
        }
    };
    Ok((snapshots, members))
}

fn describe(
    backend: &KafkaBackend,
    group: &str,
    queue: &QueueName,
    topic: &str,
    snapshot: Option<TopicSnapshot>,
    members: &Members,
) -> QueueInfo {
    let locals: Vec<(String, Arc<crate::member::Member>)> = {
        let all = backend
            .inner
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.iter()
            .filter(|(c, _)| c.group == group)
            .map(|(c, m)| (c.name.clone(), m.clone()))
            .collect()
    };
    let mut consumers: BTreeMap<String, ConsumerInfo> = BTreeMap::new();
    for (name, subscribed) in members {
        // A member without a client id cannot be named (tansu reports none).
        if name.is_empty() {
            continue;
        }
        if subscribed
            .as_ref()
            .is_none_or(|ts| ts.iter().any(|t| t == topic))
        {
            consumers.insert(
                name.clone(),
                ConsumerInfo {
                    name: name.clone(),
                    ..Default::default()
                },
            );
        }
    }
    let mut info = QueueInfo {
        queue: queue.to_string(),
        ..Default::default()
    };
    for (name, member) in &locals {
        let st = member.lock();
        if !st.wants(topic) {
            continue;
        }
        let pending = st.pending_on(topic);
        info.pending += pending;
        consumers.insert(
            name.clone(),
            ConsumerInfo {
                name: name.clone(),
                pending,
                idle_ms: st.idle_ms(),
            },
        );
    }
    let Some(snapshot) = snapshot else {
        info.consumers = consumers.into_values().collect();
        return info;
    };
    let mut committed_any = false;
    for (partition, low, high, committed) in snapshot.partitions {
        committed_any |= committed.is_some();
        // This process's owner of the partition knows better than the broker's last commit.
        let mut committed = committed;
        let mut local = None;
        for (_, member) in &locals {
            let st = member.lock();
            if let Some((pending, next_read, stored)) = st.partition(topic, partition) {
                committed = committed.max(stored);
                local = Some((pending, next_read, st.buffered_on(topic, partition)));
            }
        }
        // A watermark read a moment before a commit (or from a broker that reports it late)
        // may trail what the group has already read.
        let high = high
            .max(committed.unwrap_or(high))
            .max(local.and_then(|l| l.1).unwrap_or(high));
        info.length += (high - low).max(0) as u64;
        let start = committed.unwrap_or(low).max(low);
        let lag = (high - start).max(0) as u64;
        info.waiting += match local {
            Some((_, next_read, buffered)) => {
                (high - next_read.unwrap_or(start).max(start)).max(0) as u64 + buffered
            }
            None => lag,
        };
        info.partitions.push(PartitionInfo {
            partition,
            high_watermark: high,
            committed,
            lag,
        });
    }
    info.groups = u64::from(committed_any || !consumers.is_empty());
    info.consumers = consumers.into_values().collect();
    info
}

/// The topics of a member's subscription (Kafka's `ConsumerProtocolSubscription`: version
/// i16, then an array of strings), or `None` if the bytes are something else.
fn subscribed_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut rest = metadata.get(2..)?;
    let count = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    rest = &rest[4..];
    let mut topics = Vec::with_capacity(count.clamp(0, 1024) as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        let name = rest.get(2..2 + len)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
        rest = &rest[2 + len..];
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_subscription() {
        let mut bytes = vec![0, 1, 0, 0, 0, 2];
        for t in ["a.x", "bb"] {
            bytes.extend((t.len() as i16).to_be_bytes());
            bytes.extend(t.as_bytes());
        }
        bytes.extend([0, 0, 0, 0]);
        assert_eq!(
            subscribed_topics(&bytes),
            Some(vec!["a.x".to_string(), "bb".to_string()])
        );
        assert_eq!(subscribed_topics(&[0, 1, 0]), None);
    }
}
