//! [`MemoryQueue`]: consumer-group queues inside the process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::queue::{
    Capabilities, Consumer, ConsumerInfo, Delivery, FetchRequest, QueueBackend, QueueInfo, Receipt,
};
use crate::task::{Message, QueueName};

/// Default most undelivered-or-pending messages per queue.
pub const DEFAULT_MAX_LEN: u64 = 1_000_000;

/// Queues with consumer-group semantics, held in this process: the reference implementation
/// of [`QueueBackend`] and the server's default.
///
/// # Behavior
/// - Everything of the contract, with exact delivery counts and idle reclaim.
/// - Not durable and not shared: queues vanish with the process.
/// - A queue holds at most `max_len` messages that some group has not acked; publishing beyond
///   that is [`Error::QueueFull`]. Acked messages are dropped at once.
#[derive(Debug)]
pub struct MemoryQueue {
    queues: Mutex<HashMap<QueueName, QueueData>>,
    published: Notify,
    max_len: u64,
}

#[derive(Debug, Default)]
struct QueueData {
    entries: BTreeMap<u64, Message>,
    next_seq: u64,
    groups: HashMap<String, GroupData>,
}

#[derive(Debug, Default)]
struct GroupData {
    /// Highest sequence number delivered to the group for the first time.
    last_delivered: u64,
    pending: BTreeMap<u64, PendingEntry>,
    /// Given back by nack: delivered again before new messages.
    redeliver: VecDeque<(u64, u32)>,
    consumers: HashMap<String, Instant>,
}

#[derive(Debug)]
struct PendingEntry {
    consumer: String,
    since: Instant,
    count: u32,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LEN)
    }
}

impl MemoryQueue {
    /// An empty set of queues, each holding at most `max_len` un-acked messages.
    pub fn new(max_len: u64) -> Self {
        MemoryQueue {
            queues: Mutex::new(HashMap::new()),
            published: Notify::new(),
            max_len,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<QueueName, QueueData>> {
        // A panic while holding this lock cannot leave the maps half-updated in a way that
        // matters more than stopping the queue would: keep serving.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_ready(&self, req: &FetchRequest) -> Vec<Delivery> {
        let mut queues = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        for name in &req.queues {
            let q = queues.entry(name.clone()).or_default();
            let QueueData {
                entries, groups, ..
            } = q;
            let g = group(groups, &req.consumer.group);
            g.consumers.insert(req.consumer.name.clone(), now);
            let mut taken = 0;
            while taken < req.count {
                let (seq, count) = if let Some((seq, count)) = g.redeliver.pop_front() {
                    (seq, count + 1)
                } else if let Some((&seq, _)) = entries.range(g.last_delivered + 1..).next() {
                    g.last_delivered = seq;
                    (seq, 1)
                } else {
                    break;
                };
                let Some(message) = entries.get(&seq) else {
                    continue;
                };
                g.pending.insert(
                    seq,
                    PendingEntry {
                        consumer: req.consumer.name.clone(),
                        since: now,
                        count,
                    },
                );
                out.push(delivery(name, seq, message, count));
                taken += 1;
            }
        }
        out
    }
}

fn group<'a>(groups: &'a mut HashMap<String, GroupData>, name: &str) -> &'a mut GroupData {
    if !groups.contains_key(name) {
        groups.insert(name.to_owned(), GroupData::default());
    }
    groups.get_mut(name).expect("inserted above")
}

fn delivery(queue: &QueueName, seq: u64, message: &Message, count: u32) -> Delivery {
    Delivery {
        receipt: Receipt {
            queue: queue.clone(),
            tag: seq.to_string(),
        },
        message: message.clone(),
        delivery_count: count,
    }
}

fn parse_tag(receipt: &Receipt) -> Option<u64> {
    receipt.tag.parse().ok()
}

impl QueueData {
    /// Drops `seq` once no group still needs it.
    fn drop_if_done(&mut self, seq: u64) {
        let needed = self.groups.values().any(|g| {
            seq > g.last_delivered
                || g.pending.contains_key(&seq)
                || g.redeliver.iter().any(|(s, _)| *s == seq)
        });
        if !needed {
            self.entries.remove(&seq);
        }
    }
}

#[async_trait]
impl QueueBackend for MemoryQueue {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            idle_reclaim: true,
            touch: true,
            durable: false,
            shared: false,
            delivery_count: true,
            exact_ack: true,
        }
    }

    async fn publish(&self, queue: &QueueName, messages: &[Message]) -> Result<()> {
        {
            let mut queues = self.lock();
            let q = queues.entry(queue.clone()).or_default();
            if q.entries.len() as u64 + messages.len() as u64 > self.max_len {
                return Err(Error::QueueFull {
                    queue: queue.to_string(),
                    limit: self.max_len,
                });
            }
            for m in messages {
                q.next_seq += 1;
                q.entries.insert(q.next_seq, m.clone());
            }
        }
        self.published.notify_waiters();
        Ok(())
    }

    async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Delivery>> {
        if req.count == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + req.block;
        loop {
            let notified = self.published.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let ready = self.take_ready(req);
            if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(ready);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<u64> {
        let mut queues = self.lock();
        let mut acked = 0;
        for r in receipts {
            let (Some(seq), Some(q)) = (parse_tag(r), queues.get_mut(&r.queue)) else {
                continue;
            };
            let Some(g) = q.groups.get_mut(&consumer.group) else {
                continue;
            };
            if g.pending.remove(&seq).is_some() {
                acked += 1;
                q.drop_if_done(seq);
            }
        }
        Ok(acked)
    }

    async fn nack(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<()> {
        {
            let mut queues = self.lock();
            for r in receipts {
                let (Some(seq), Some(q)) = (parse_tag(r), queues.get_mut(&r.queue)) else {
                    continue;
                };
                let Some(g) = q.groups.get_mut(&consumer.group) else {
                    continue;
                };
                if let Some(p) = g.pending.remove(&seq) {
                    g.redeliver.push_back((seq, p.count));
                }
            }
        }
        self.published.notify_waiters();
        Ok(())
    }

    async fn reclaim(
        &self,
        consumer: &Consumer,
        queues: &[QueueName],
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>> {
        let mut all = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        for name in queues {
            let Some(q) = all.get_mut(name) else { continue };
            let Some(g) = q.groups.get_mut(&consumer.group) else {
                continue;
            };
            g.consumers.insert(consumer.name.clone(), now);
            for (seq, p) in g.pending.iter_mut() {
                if out.len() >= count {
                    break;
                }
                if now.duration_since(p.since) < min_idle {
                    continue;
                }
                p.consumer = consumer.name.clone();
                p.since = now;
                p.count += 1;
                if let Some(m) = q.entries.get(seq) {
                    out.push(delivery(name, *seq, m, p.count));
                }
            }
        }
        Ok(out)
    }

    async fn touch(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<()> {
        let mut queues = self.lock();
        let now = Instant::now();
        for r in receipts {
            let (Some(seq), Some(q)) = (parse_tag(r), queues.get_mut(&r.queue)) else {
                continue;
            };
            if let Some(p) = q
                .groups
                .get_mut(&consumer.group)
                .and_then(|g| g.pending.get_mut(&seq))
            {
                if p.consumer == consumer.name {
                    p.since = now;
                }
            }
        }
        Ok(())
    }

    async fn info(&self, group_name: &str, queues: &[QueueName]) -> Result<Vec<QueueInfo>> {
        let all = self.lock();
        let now = Instant::now();
        Ok(queues
            .iter()
            .map(|name| {
                let Some(q) = all.get(name) else {
                    return QueueInfo {
                        queue: name.to_string(),
                        ..Default::default()
                    };
                };
                let mut info = QueueInfo {
                    queue: name.to_string(),
                    length: q.entries.len() as u64,
                    groups: q.groups.len() as u64,
                    ..Default::default()
                };
                match q.groups.get(group_name) {
                    Some(g) => {
                        info.waiting = q.entries.range(g.last_delivered + 1..).count() as u64
                            + g.redeliver.len() as u64;
                        info.pending = g.pending.len() as u64;
                        let mut consumers: Vec<_> = g
                            .consumers
                            .iter()
                            .map(|(c, seen)| ConsumerInfo {
                                name: c.clone(),
                                pending: g.pending.values().filter(|p| &p.consumer == c).count()
                                    as u64,
                                idle_ms: now.duration_since(*seen).as_millis() as u64,
                            })
                            .collect();
                        consumers.sort_by(|a, b| a.name.cmp(&b.name));
                        info.consumers = consumers;
                    }
                    None => info.waiting = info.length,
                }
                info
            })
            .collect())
    }

    async fn leave(&self, consumer: &Consumer) -> Result<()> {
        let mut queues = self.lock();
        for q in queues.values_mut() {
            if let Some(g) = q.groups.get_mut(&consumer.group) {
                if !g.pending.values().any(|p| p.consumer == consumer.name) {
                    g.consumers.remove(&consumer.name);
                }
            }
        }
        Ok(())
    }
}
