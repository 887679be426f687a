//! [`KafkaBackend`]: XQueue's queue contract on Kafka consumer groups.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;
use tracing::Instrument;
use xqueue_core::{
    now_millis, Capabilities, Consumer, Delivery, Error, FetchRequest, Message, QueueBackend,
    QueueInfo, QueueName, Receipt, Result,
};

use crate::client::{self, TracingContext};
use crate::config::KafkaConfig;
use crate::error::{self, KIND};
use crate::member::Member;

/// XQueue's queues as Kafka topics, read through consumer groups.
///
/// Cheap to clone: clones share the producer, the consumers and the caches.
///
/// # Behavior
/// - Queue `q` is topic `{topic_prefix}.q`, created on first use with
///   [`KafkaConfig::partitions`] partitions; a topic that already exists is used as it is.
/// - Publish waits until every message is acknowledged by all in-sync replicas (idempotent
///   producer, `acks=all`). Messages are keyed by task id: order holds within a partition only.
/// - Each [`Consumer`] is one group member with its own rdkafka consumer, polled by a
///   background thread that sorts messages into per-queue buffers, so fetches for different
///   queues under one consumer never block one another. A queue whose buffer is full has its
///   partitions paused until fetches drain it.
/// - The first fetch of a consumer (or with a queue it never fetched before) waits for the
///   group to assign partitions, up to [`KafkaConfig::assignment_timeout`], before its `block`.
/// - Acks complete offsets in any order; only the contiguous prefix of completed offsets of a
///   partition is committed. After a crash or rebalance the new owner resumes from there, so
///   acked messages above a gap may be delivered again (`exact_ack: false`).
/// - Acking a receipt of a partition this member no longer owns counts 0: the new owner gets
///   the message again.
/// - Nack publishes the message again at the end of its topic and completes the original
///   offset: the partition never waits for it.
/// - `reclaim` and `touch` return [`Error::Unsupported`]: messages of a vanished member come
///   back when the group rebalances (after `session_timeout`), from the committed offset.
/// - Delivery counts are not tracked by Kafka: every delivery reports 1.
#[derive(Clone)]
pub struct KafkaBackend {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: KafkaConfig,
    producer: FutureProducer<TracingContext>,
    admin: AdminClient<TracingContext>,
    /// Topics known to exist.
    topics: Mutex<HashSet<String>>,
    /// This process's group members.
    pub(crate) members: Mutex<HashMap<Consumer, Arc<Member>>>,
    /// Metadata readers per group (a consumer with `group.id` that never subscribes).
    inspectors: Mutex<HashMap<String, Arc<BaseConsumer<TracingContext>>>>,
}

impl std::fmt::Debug for KafkaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBackend")
            .field("config", &self.inner.cfg)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KafkaBackend {
    /// Connects to the brokers of `cfg`.
    ///
    /// # Behavior
    /// - Invalid settings are [`Error::InvalidInput`].
    /// - Returns [`Error::Unavailable`] when no broker answers a metadata request within
    ///   [`KafkaConfig::request_timeout`].
    pub async fn connect(cfg: KafkaConfig) -> Result<KafkaBackend> {
        cfg.validate()?;
        let producer: FutureProducer<TracingContext> = client::producer_config(&cfg)
            .create_with_context(TracingContext)
            .map_err(|e| error::map("creating producer", e))?;
        let admin: AdminClient<TracingContext> = client::admin_config(&cfg)
            .create_with_context(TracingContext)
            .map_err(|e| error::map("creating admin client", e))?;
        let backend = KafkaBackend {
            inner: Arc::new(Inner {
                cfg,
                producer,
                admin,
                topics: Mutex::new(HashSet::new()),
                members: Mutex::new(HashMap::new()),
                inspectors: Mutex::new(HashMap::new()),
            }),
        };
        let inner = backend.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner
                .producer
                .client()
                .fetch_metadata(None, inner.cfg.request_timeout)
                .map(|_| ())
        })
        .await
        .map_err(|e| error::join("connecting", e))?
        .map_err(|e| Error::Unavailable {
            backend: KIND,
            message: format!(
                "no broker answered at {}: {e}",
                backend.inner.cfg.bootstrap_servers
            ),
        })?;
        Ok(backend)
    }

    /// The settings this backend runs with.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.cfg
    }

    /// Creates the topics of `queues` that this process has not yet seen, and waits until
    /// the brokers' metadata lists them with a leader for every partition.
    async fn ensure_topics(&self, topics: &[String]) -> Result<()> {
        let missing: Vec<String> = {
            let known = lock(&self.inner.topics);
            topics
                .iter()
                .filter(|t| !known.contains(*t))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let cfg = &self.inner.cfg;
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|t| {
                NewTopic::new(
                    t,
                    cfg.partitions,
                    TopicReplication::Fixed(cfg.replication_factor),
                )
            })
            .collect();
        let opts = AdminOptions::new()
            .request_timeout(Some(cfg.request_timeout))
            .operation_timeout(Some(cfg.request_timeout));
        let results = self
            .inner
            .admin
            .create_topics(&new, &opts)
            .await
            .map_err(|e| error::map("creating topics", e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => {
                    return Err(error::code(&format!("creating topic {topic}"), code));
                }
            }
        }
        let inner = self.inner.clone();
        let wanted = missing.clone();
        tokio::task::spawn_blocking(move || wait_for_metadata(&inner, &wanted))
            .await
            .map_err(|e| error::join("waiting for topic metadata", e))??;
        lock(&self.inner.topics).extend(missing);
        Ok(())
    }

    /// This process's member for `consumer`, started on first use.
    fn member(&self, consumer: &Consumer) -> Result<Arc<Member>> {
        let mut members = lock(&self.inner.members);
        if let Some(m) = members.get(consumer) {
            return Ok(m.clone());
        }
        let m = Arc::new(Member::start(&self.inner.cfg, consumer)?);
        members.insert(consumer.clone(), m.clone());
        Ok(m)
    }

    fn existing_member(&self, consumer: &Consumer) -> Option<Arc<Member>> {
        lock(&self.inner.members).get(consumer).cloned()
    }

    /// The metadata reader of `group`.
    pub(crate) fn inspector(&self, group: &str) -> Result<Arc<BaseConsumer<TracingContext>>> {
        let mut inspectors = lock(&self.inner.inspectors);
        if let Some(c) = inspectors.get(group) {
            return Ok(c.clone());
        }
        let c: BaseConsumer<TracingContext> = client::inspector_config(&self.inner.cfg, group)
            .create_with_context(TracingContext)
            .map_err(|e| error::map("creating metadata consumer", e))?;
        let c = Arc::new(c);
        inspectors.insert(group.to_string(), c.clone());
        Ok(c)
    }

    async fn send(&self, topic: &str, messages: &[Message]) -> Result<()> {
        let payloads: Vec<Vec<u8>> = messages
            .iter()
            .map(|m| serde_json::to_vec(m).map_err(|e| Error::invalid("message", e.to_string())))
            .collect::<Result<_>>()?;
        let timeout = Timeout::After(self.inner.cfg.request_timeout);
        let sends = messages.iter().zip(&payloads).map(|(m, payload)| {
            let record = FutureRecord::to(topic)
                .key(m.task_id.as_str())
                .payload(payload.as_slice());
            self.inner.producer.send(record, timeout)
        });
        for result in futures::future::join_all(sends).await {
            result.map_err(|(e, _)| error::map(&format!("publishing to {topic}"), e))?;
        }
        Ok(())
    }
}

/// Polls metadata until every topic in `topics` has all its partitions led by a broker.
fn wait_for_metadata(inner: &Inner, topics: &[String]) -> Result<()> {
    let deadline = Instant::now() + inner.cfg.request_timeout;
    for topic in topics {
        loop {
            let ready = inner
                .producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(5))
                .map(|md| {
                    md.topics().iter().any(|t| {
                        t.name() == topic
                            && t.error().is_none()
                            && !t.partitions().is_empty()
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    })
                });
            match ready {
                Ok(true) => break,
                Ok(false) | Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(false) => {
                    return Err(Error::Unavailable {
                        backend: KIND,
                        message: format!("topic {topic} has no leader yet"),
                    })
                }
                Err(e) => return Err(error::map(&format!("metadata of {topic}"), e)),
            }
        }
    }
    Ok(())
}

#[async_trait]
impl QueueBackend for KafkaBackend {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            idle_reclaim: false,
            touch: false,
            durable: true,
            shared: true,
            delivery_count: false,
            exact_ack: false,
        }
    }

    async fn publish(&self, queue: &QueueName, messages: &[Message]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let topic = self.inner.cfg.topic(queue.as_str());
        let span =
            tracing::debug_span!("publish", backend = KIND, queue = %queue, count = messages.len());
        async {
            self.ensure_topics(std::slice::from_ref(&topic)).await?;
            self.send(&topic, messages).await
        }
        .instrument(span)
        .await
    }

    async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Delivery>> {
        if req.queues.is_empty() || req.count == 0 {
            return Ok(Vec::new());
        }
        let queues: Vec<(QueueName, String)> = req
            .queues
            .iter()
            .map(|q| (q.clone(), self.inner.cfg.topic(q.as_str())))
            .collect();
        let topics: Vec<String> = queues.iter().map(|(_, t)| t.clone()).collect();
        let span = tracing::debug_span!("fetch", backend = KIND, consumer = %req.consumer.name);
        async {
            self.ensure_topics(&topics).await?;
            let member = self.member(&req.consumer)?;
            let gen = member.want(&topics);
            member
                .fetch(
                    &queues,
                    req.count,
                    req.block,
                    gen,
                    self.inner.cfg.assignment_timeout,
                )
                .await
        }
        .instrument(span)
        .await
    }

    async fn ack(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<u64> {
        Ok(self
            .existing_member(consumer)
            .map_or(0, |m| m.complete(receipts)))
    }

    async fn nack(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<()> {
        let Some(member) = self.existing_member(consumer) else {
            return Ok(());
        };
        let pending = member.pending_messages(receipts);
        let mut by_queue: HashMap<QueueName, Vec<Message>> = HashMap::new();
        for (receipt, message) in &pending {
            let mut again = message.clone();
            again.enqueued_at = now_millis();
            by_queue
                .entry(receipt.queue.clone())
                .or_default()
                .push(again);
        }
        for (queue, messages) in by_queue {
            self.send(&self.inner.cfg.topic(queue.as_str()), &messages)
                .await?;
        }
        let done: Vec<Receipt> = pending.into_iter().map(|(r, _)| r).collect();
        member.complete(&done);
        Ok(())
    }

    async fn reclaim(
        &self,
        _consumer: &Consumer,
        _queues: &[QueueName],
        _min_idle: Duration,
        _count: usize,
    ) -> Result<Vec<Delivery>> {
        Err(Error::Unsupported {
            backend: KIND,
            operation: "reclaim (messages of a vanished member return on rebalance)",
        })
    }

    async fn touch(&self, _consumer: &Consumer, _receipts: &[Receipt]) -> Result<()> {
        Err(Error::Unsupported {
            backend: KIND,
            operation: "touch (Kafka has no per-message idle time)",
        })
    }

    async fn info(&self, group: &str, queues: &[QueueName]) -> Result<Vec<QueueInfo>> {
        crate::info::info(self, group, queues).await
    }

    async fn leave(&self, consumer: &Consumer) -> Result<()> {
        let member = lock(&self.inner.members).remove(consumer);
        let Some(left) = member.and_then(|m| m.stop()) else {
            return Ok(());
        };
        let deadline = self.inner.cfg.request_timeout + self.inner.cfg.revoke_drain;
        match tokio::time::timeout(deadline, left).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::Timeout(deadline)),
        }
    }
}
