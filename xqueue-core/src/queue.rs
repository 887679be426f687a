//! The queue contract: consumer-group semantics every backend provides.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::task::{Message, QueueName};

/// A member of a consumer group: the identity under which deliveries are fetched and owned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Consumer {
    /// The group; every message of a queue goes to one member of each group.
    pub group: String,
    /// This member's name, unique within the group (XQueue uses the instance id).
    pub name: String,
}

impl Consumer {
    /// A consumer `name` of `group`.
    pub fn new(group: impl Into<String>, name: impl Into<String>) -> Self {
        Consumer {
            group: group.into(),
            name: name.into(),
        }
    }
}

/// Identifies one delivery to one consumer, for [`QueueBackend::ack`], `nack` and `touch`.
///
/// The tag is the backend's own position (a Redis stream entry id, a Kafka `partition:offset`);
/// it is opaque to everyone else.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Receipt {
    /// The queue it came from.
    pub queue: QueueName,
    /// The backend's position of the message in that queue.
    pub tag: String,
}

/// A message handed to a consumer. It stays *pending* for that consumer until acked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Where to ack it.
    pub receipt: Receipt,
    /// What was published.
    pub message: Message,
    /// How many times this message has been delivered, this time included (1 on first delivery).
    pub delivery_count: u32,
}

/// What [`QueueBackend::fetch`] reads.
#[derive(Clone, Debug)]
pub struct FetchRequest {
    /// Who fetches.
    pub consumer: Consumer,
    /// Which queues, most urgent first.
    pub queues: Vec<QueueName>,
    /// At most this many deliveries per queue.
    pub count: usize,
    /// How long to wait when nothing is ready; zero returns at once.
    pub block: Duration,
}

/// One member of a group as a queue sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerInfo {
    /// The consumer's name.
    pub name: String,
    /// Deliveries it holds un-acked.
    pub pending: u64,
    /// Milliseconds since it last fetched or acked.
    pub idle_ms: u64,
}

/// One partition of a partitioned queue (Kafka).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: i32,
    /// Offset the next published message gets.
    pub high_watermark: i64,
    /// Offset the group has committed, if any.
    pub committed: Option<i64>,
    /// Messages published but not yet committed by the group.
    pub lag: u64,
}

/// A snapshot of one queue and one group on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    /// The queue.
    pub queue: String,
    /// Messages stored in the queue (delivered or not, until trimmed).
    pub length: u64,
    /// Messages not yet delivered to the group.
    pub waiting: u64,
    /// Delivered to the group and not yet acked.
    pub pending: u64,
    /// Consumer groups reading the queue.
    pub groups: u64,
    /// The group's members.
    pub consumers: Vec<ConsumerInfo>,
    /// Partitions, for partitioned backends; empty otherwise.
    pub partitions: Vec<PartitionInfo>,
}

/// What a backend can do, as data: the worker pool, the conformance suite and the server read
/// it instead of guessing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// [`QueueBackend::reclaim`] takes over deliveries idle past a given time. Without it,
    /// deliveries of a vanished consumer come back another way (Kafka: on rebalance, from
    /// the last committed offset).
    pub idle_reclaim: bool,
    /// [`QueueBackend::touch`] resets a delivery's idle time, so a long task is not reclaimed.
    pub touch: bool,
    /// Queues and groups survive a restart of this process (the backend is a separate server).
    pub durable: bool,
    /// Several processes can share the queues (consumers of one group in different processes).
    pub shared: bool,
    /// Delivery counts are exact across redeliveries (Kafka cannot count, and reports 1).
    /// Without them, the task manager still detects poison tasks by their start count
    /// (`begin` counts a redelivery of a started task as another attempt).
    pub delivery_count: bool,
    /// A delivery acked by its consumer is never delivered again to the same group.
    /// (Kafka only guarantees this for a contiguous prefix of offsets.)
    pub exact_ack: bool,
}

/// A queue with consumer-group semantics: the part of XQueue each backend implements.
///
/// Object safe and `&self` everywhere: use it as `Arc<dyn QueueBackend>`.
///
/// # Contract
/// Every backend passes `xqueue_core::testing` (the conformance suite), which checks these:
/// - **Publish** appends messages to a queue, creating the queue and the group on demand.
///   Order is kept per queue (partitioned backends: per partition only).
///   When a message could not be stored, `publish` returns an error and nothing is half-stored
///   for that message. A backend with a length limit refuses with [`Error::QueueFull`] instead of
///   dropping a message that is undelivered or un-acked; a batch is refused whole.
/// - **Fetch** hands each message of a queue to exactly one member of each group, at most
///   `count` per queue per call, and waits up to `block` when nothing is ready (a consumer's
///   first fetch on a partitioned backend may first wait for its group assignment). A blocked fetch
///   returns promptly (well under 100 ms) after a publish to one of its queues.
///   A fetch over several queues never starves a queue: every queue with ready messages
///   contributes to the result.
/// - A delivery stays **pending** for its consumer until acked. **Ack** removes it from
///   pending for good and returns how many of the receipts were pending; acking an unknown or
///   already-acked receipt is not an error and counts 0.
/// - **Nack** gives a pending delivery back: it will be delivered again, to any member, without
///   waiting for an idle timeout.
/// - **Reclaim** (when [`Capabilities::idle_reclaim`]) transfers deliveries idle longer than
///   `min_idle` from any member of the group to the caller, with their delivery count
///   increased. A delivery whose consumer keeps calling **touch** is never idle long enough.
/// - **Info** reports lengths, pending counts and group members truthfully.
/// - No message is lost: a published message is delivered until acked, across consumers that
///   vanish and (for durable backends) broker restarts.
/// - Delivery is at least once. A group the broker lost (Redis restarted without persistence)
///   is re-created from the start of the queue, so acked messages not yet trimmed may be
///   delivered again; the task manager's `begin` skips their finished tasks.
///
/// [`Error::QueueFull`]: crate::Error::QueueFull
#[async_trait]
pub trait QueueBackend: Send + Sync + 'static {
    /// The backend's kind: `"memory"`, `"redis"`, `"kafka"`.
    fn kind(&self) -> &'static str;

    /// What this backend supports.
    fn capabilities(&self) -> Capabilities;

    /// Appends `messages` to `queue`, in order.
    async fn publish(&self, queue: &QueueName, messages: &[Message]) -> Result<()>;

    /// Fetches new messages for `req.consumer` from `req.queues`.
    async fn fetch(&self, req: &FetchRequest) -> Result<Vec<Delivery>>;

    /// Acknowledges deliveries; returns how many were pending.
    async fn ack(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<u64>;

    /// Gives pending deliveries back for prompt redelivery.
    async fn nack(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<()>;

    /// Takes over deliveries of `queues` idle for at least `min_idle`, at most `count` per queue.
    ///
    /// Backends without [`Capabilities::idle_reclaim`] return [`crate::Error::Unsupported`].
    async fn reclaim(
        &self,
        consumer: &Consumer,
        queues: &[QueueName],
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>>;

    /// Resets the idle time of deliveries the consumer holds (a heartbeat for long tasks).
    ///
    /// Backends without [`Capabilities::touch`] return [`crate::Error::Unsupported`].
    async fn touch(&self, consumer: &Consumer, receipts: &[Receipt]) -> Result<()>;

    /// Describes `queues` as seen by `group`.
    async fn info(&self, group: &str, queues: &[QueueName]) -> Result<Vec<QueueInfo>>;

    /// Releases what the backend holds for `consumer` (connections, group membership) after
    /// the consumer acked or nacked everything it held. Deliveries it still holds stay pending
    /// and are redelivered as for a vanished consumer.
    async fn leave(&self, consumer: &Consumer) -> Result<()>;
}
