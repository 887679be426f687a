//! What every XQueue measurement runs on: the backend (`Target`), a manager with the bench's
//! no-op handler registered.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value as Json;
use xqueue_core::{memory, Backends, ManagerConfig, Task, TaskError, TaskHandler, TaskManager};
use xqueue_redis::{RedisBackend, RedisConfig};

use crate::latency::{sent_ns, Probe};
use crate::redisx::RedisProbe;
use crate::Ctx;

/// The task type of every benchmark task.
pub const TASK_TYPE: &str = "bench";

/// A no-op handler that reports each start to a [`Probe`].
pub struct BenchHandler {
    /// Where starts are reported.
    pub probe: Arc<Probe>,
}

#[async_trait]
impl TaskHandler for BenchHandler {
    fn task_type(&self) -> &str {
        TASK_TYPE
    }

    async fn handle(&self, task: &Task) -> Result<Json, TaskError> {
        self.probe.observe(sent_ns(&task.payload));
        Ok(Json::Null)
    }
}

/// Which backend the library runs on.
#[derive(Clone, Debug)]
pub enum Target {
    /// XQueue's Redis backend.
    Redis,
    /// The Redis backend's queues with the task state (and limits) in memory: a diagnostic
    /// measured for processing only (see [`crate::cli::Phase::RedisQueue`]).
    RedisQueue,
    /// The in-memory backend.
    Memory,
    /// Kafka queues; task state and limits in the same Redis (the deployment the server runs
    /// with `--backend kafka --redis-url …`).
    #[cfg(feature = "kafka")]
    Kafka {
        /// `host:port` of the broker.
        bootstrap: String,
    },
}

impl Target {
    /// The backend's name.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Redis => "redis",
            Target::RedisQueue => "redis queue, memory state",
            Target::Memory => "memory",
            #[cfg(feature = "kafka")]
            Target::Kafka { .. } => "kafka",
        }
    }

    /// The table's group for this target reached `via` the library or HTTP.
    pub fn group(&self, via: crate::submit::Via) -> String {
        match via {
            crate::submit::Via::Library => format!("{} (library)", self.name()),
            crate::submit::Via::Http => format!("{} (http)", self.name()),
        }
    }

    /// Kafka is measured for processing and latency only, the diagnostic for processing only.
    pub fn measures_enqueue(&self) -> bool {
        match self {
            Target::Redis | Target::Memory => true,
            Target::RedisQueue => false,
            #[cfg(feature = "kafka")]
            Target::Kafka { .. } => false,
        }
    }

    /// Whether submit→start latency is measured.
    pub fn measures_latency(&self) -> bool {
        !matches!(self, Target::RedisQueue)
    }

    /// Whether consuming starts only after a consumer-group join of several seconds.
    pub fn joins_a_group(&self) -> bool {
        match self {
            Target::Redis | Target::RedisQueue | Target::Memory => false,
            #[cfg(feature = "kafka")]
            Target::Kafka { .. } => true,
        }
    }

    /// Whether the backends keep anything in Redis.
    pub fn uses_redis(&self) -> bool {
        !matches!(self, Target::Memory)
    }

    /// Fresh backends in a namespace of their own (`prefix`).
    pub async fn backends(&self, ctx: &Ctx, prefix: &str, max_len: u64) -> crate::Result<Backends> {
        match self {
            Target::Memory => Ok(Backends {
                queue: Arc::new(memory::MemoryQueue::new(
                    max_len.max(memory::DEFAULT_MAX_LEN),
                )),
                ..memory::backends()
            }),
            Target::Redis => Ok(redis_backend(ctx.redis()?, prefix, max_len)
                .await?
                .backends()),
            Target::RedisQueue => {
                let redis = redis_backend(ctx.redis()?, prefix, max_len).await?;
                Ok(Backends {
                    queue: Arc::new(redis),
                    ..memory::backends()
                })
            }
            #[cfg(feature = "kafka")]
            Target::Kafka { bootstrap } => {
                let state = redis_backend(ctx.redis()?, prefix, max_len)
                    .await?
                    .backends();
                let config = xqueue_tests::kafka::test_config(bootstrap);
                let queue = xqueue_kafka::KafkaBackend::connect(config).await?;
                Ok(Backends {
                    queue: Arc::new(queue),
                    ..state
                })
            }
        }
    }
}

/// XQueue's Redis backend on the bench's Redis, keys under `prefix`.
pub async fn redis_backend(
    probe: &RedisProbe,
    prefix: &str,
    max_len: u64,
) -> crate::Result<RedisBackend> {
    let config = RedisConfig::new(probe.url())
        .key_prefix(prefix)
        .max_len(max_len.max(RedisConfig::default().max_len));
    Ok(RedisBackend::connect(config).await?)
}

/// The manager settings of every measurement: the defaults, with `--workers` worker slots and
/// a 1 s block timeout (so that shutting a manager down between measurements is quick; a
/// blocked fetch returns as soon as a message arrives either way).
pub fn manager_config(ctx: &Ctx) -> ManagerConfig {
    ManagerConfig {
        workers: ctx.args.workers,
        block_timeout: Duration::from_secs(1),
        ..ManagerConfig::default()
    }
}

/// A manager on fresh backends with the bench handler registered (not started).
pub async fn manager(
    ctx: &Ctx,
    target: &Target,
    prefix: &str,
    max_len: u64,
) -> crate::Result<(TaskManager, Arc<Probe>)> {
    let backends = target.backends(ctx, prefix, max_len).await?;
    let m = TaskManager::new(backends, manager_config(ctx));
    let probe = Arc::new(Probe::default());
    m.register_handler(Arc::new(BenchHandler {
        probe: probe.clone(),
    }))?;
    Ok((m, probe))
}

/// A submitter on `manager`'s backends that runs no workers (a second instance, not started):
/// what it submits is run by `manager`'s pool, never started on submit.
pub fn submit_only(
    ctx: &Ctx,
    manager: &TaskManager,
    probe: &Arc<Probe>,
) -> crate::Result<crate::submit::Submitter> {
    let m = TaskManager::new(manager.backends().clone(), manager_config(ctx));
    m.register_handler(Arc::new(BenchHandler {
        probe: probe.clone(),
    }))?;
    Ok(crate::submit::Submitter::Library(m))
}
