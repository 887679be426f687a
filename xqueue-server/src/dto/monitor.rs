//! Monitoring on the wire: stream, workers, stats, health.

use serde::Serialize;
use utoipa::ToSchema;
use xqueue_core::{ConsumerInfo, PartitionInfo, QueueInfo, QueueStats, Stats, WorkerStats};

/// One consumer (instance) of the group.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumerResponse {
    /// Consumer name (the instance id).
    #[schema(example = "xqueue-a1b2c3d4")]
    pub name: String,
    /// Deliveries it holds un-acked.
    pub pending: u64,
    /// Milliseconds since it last fetched or acked.
    #[schema(example = 1500)]
    pub idle: u64,
}

impl From<ConsumerInfo> for ConsumerResponse {
    fn from(c: ConsumerInfo) -> Self {
        ConsumerResponse {
            name: c.name,
            pending: c.pending,
            idle: c.idle_ms,
        }
    }
}

/// One partition of a Kafka queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionResponse {
    /// Partition number.
    pub partition: i32,
    /// Offset the next message gets.
    pub high_watermark: i64,
    /// Offset committed by the group, if any.
    pub committed: Option<i64>,
    /// Messages not yet committed by the group.
    pub lag: u64,
}

impl From<PartitionInfo> for PartitionResponse {
    fn from(p: PartitionInfo) -> Self {
        PartitionResponse {
            partition: p.partition,
            high_watermark: p.high_watermark,
            committed: p.committed,
            lag: p.lag,
        }
    }
}

/// One queue (a task type's priority band, e.g. `email.high`).
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueResponse {
    /// Queue name.
    #[schema(example = "email.normal")]
    pub queue: String,
    /// Messages stored.
    pub length: u64,
    /// Messages not yet delivered.
    pub waiting: u64,
    /// Delivered, not yet acked.
    pub pending: u64,
    /// Consumer groups reading it.
    pub groups: u64,
    /// The group's members.
    pub consumers: Vec<ConsumerResponse>,
    /// Partitions (Kafka); empty for other backends.
    pub partitions: Vec<PartitionResponse>,
}

impl From<QueueInfo> for QueueResponse {
    fn from(q: QueueInfo) -> Self {
        QueueResponse {
            queue: q.queue,
            length: q.length,
            waiting: q.waiting,
            pending: q.pending,
            groups: q.groups,
            consumers: q.consumers.into_iter().map(Into::into).collect(),
            partitions: q.partitions.into_iter().map(Into::into).collect(),
        }
    }
}

/// Every queue of the registered task types, summed (the Go version had one stream).
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamInfo {
    /// Messages stored over all queues.
    #[schema(example = 15)]
    pub length: u64,
    /// Consumer groups (the most on any one queue).
    #[schema(example = 1)]
    pub groups: u64,
    /// Group members over all queues, merged by name.
    pub consumers: Vec<ConsumerResponse>,
    /// Messages not yet delivered.
    pub waiting: u64,
    /// Delivered, not yet acked.
    pub pending: u64,
    /// Per queue.
    pub queues: Vec<QueueResponse>,
}

impl From<QueueStats> for StreamInfo {
    fn from(q: QueueStats) -> Self {
        StreamInfo {
            length: q.length,
            groups: q.groups,
            consumers: q.consumers.into_iter().map(Into::into).collect(),
            waiting: q.waiting,
            pending: q.pending,
            queues: q.queues.into_iter().map(Into::into).collect(),
        }
    }
}

/// `GET /api/v1/stream` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamResponse {
    /// The queues.
    pub stream_info: StreamInfo,
}

/// `GET /api/v1/workers` answer: this instance's worker pool.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkersResponse {
    /// Worker slots.
    #[schema(example = 10)]
    pub total_workers: usize,
    /// Slots running a task now.
    #[schema(example = 8)]
    pub active_workers: usize,
    /// Attempts that succeeded on this instance since it started.
    #[schema(example = 156)]
    pub processed_tasks: u64,
    /// Attempts that failed on this instance since it started.
    #[schema(example = 2)]
    pub failed_tasks: u64,
    /// Time since start, in nanoseconds (as Go's `time.Duration`).
    #[schema(example = 3_600_000_000_000_u64)]
    pub uptime: u64,
    /// Failed attempts scheduled for a retry.
    pub retried_tasks: u64,
    /// Tasks this instance dead-lettered.
    pub dead_lettered_tasks: u64,
    /// Tasks a submit to this instance handed straight to one of its idle workers
    /// (`--start-on-submit`).
    pub started_on_submit_tasks: u64,
    /// Finished attempts per second over the last ten seconds.
    pub throughput: f64,
    /// This instance.
    pub instance_id: String,
}

impl WorkersResponse {
    /// The answer for `stats` of instance `instance_id`.
    pub fn new(w: WorkerStats, instance_id: String) -> Self {
        WorkersResponse {
            total_workers: w.total_workers,
            active_workers: w.active_workers,
            processed_tasks: w.processed_tasks,
            failed_tasks: w.failed_tasks,
            uptime: u64::try_from(w.uptime.as_nanos()).unwrap_or(u64::MAX),
            retried_tasks: w.retried_tasks,
            dead_lettered_tasks: w.dead_lettered_tasks,
            started_on_submit_tasks: w.started_on_submit,
            throughput: w.throughput,
            instance_id,
        }
    }
}

/// The stream summary inside `/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsStreamInfo {
    /// Messages stored over all queues.
    #[schema(example = 8)]
    pub length: u64,
    /// Consumer groups.
    #[schema(example = 1)]
    pub groups: u64,
    /// Messages not yet delivered.
    pub waiting: u64,
    /// Delivered, not yet acked.
    pub pending: u64,
}

/// `GET /api/v1/stats` answer: cluster-wide task counts and this instance's view.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    /// Tasks waiting on a queue (cluster-wide).
    #[schema(example = 5)]
    pub pending_tasks: u64,
    /// Tasks running (cluster-wide).
    #[schema(example = 3)]
    pub processing_tasks: u64,
    /// Tasks finished successfully, within the retention.
    #[schema(example = 142)]
    pub success_tasks: u64,
    /// Dead-lettered tasks.
    #[schema(example = 2)]
    pub failed_tasks: u64,
    /// Delayed tasks waiting for their time.
    pub scheduled_tasks: u64,
    /// Tasks waiting for a retry.
    pub retrying_tasks: u64,
    /// Cancelled tasks, within the retention.
    pub cancelled_tasks: u64,
    /// This instance's worker slots.
    #[schema(example = 10)]
    pub total_workers: usize,
    /// This instance's busy slots.
    #[schema(example = 8)]
    pub active_workers: usize,
    /// Attempts this instance finished successfully.
    pub processed_tasks: u64,
    /// Finished attempts per second on this instance over the last ten seconds.
    pub throughput: f64,
    /// Time since start, in nanoseconds.
    pub uptime: u64,
    /// The queues.
    pub stream_info: StatsStreamInfo,
    /// This instance.
    #[schema(example = "xqueue-a1b2c3d4")]
    pub instance_id: String,
    /// Whether the worker pool runs.
    pub is_running: bool,
    /// The queue backend: `memory`, `redis` or `kafka`.
    pub backend: String,
}

impl From<Stats> for StatsResponse {
    fn from(s: Stats) -> Self {
        StatsResponse {
            pending_tasks: s.counts.pending,
            processing_tasks: s.counts.processing,
            success_tasks: s.counts.success,
            failed_tasks: s.counts.failed,
            scheduled_tasks: s.counts.scheduled,
            retrying_tasks: s.counts.retrying,
            cancelled_tasks: s.counts.cancelled,
            total_workers: s.workers.total_workers,
            active_workers: s.workers.active_workers,
            processed_tasks: s.workers.processed_tasks,
            throughput: s.workers.throughput,
            uptime: u64::try_from(s.workers.uptime.as_nanos()).unwrap_or(u64::MAX),
            stream_info: StatsStreamInfo {
                length: s.queues.length,
                groups: s.queues.groups,
                waiting: s.queues.waiting,
                pending: s.queues.pending,
            },
            instance_id: s.instance_id,
            is_running: s.is_running,
            backend: s.backend.to_string(),
        }
    }
}

/// `GET /api/v1/health` answer (200 when healthy, 503 when not).
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `healthy` or `unhealthy`.
    #[schema(example = "healthy")]
    pub status: String,
    /// The queue backend.
    #[schema(example = "redis")]
    pub backend: String,
    /// Whether the backend answered.
    pub backend_reachable: bool,
    /// Whether the worker pool runs.
    pub is_running: bool,
    /// This instance.
    pub instance_id: String,
    /// When this answer was made.
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Why it is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
