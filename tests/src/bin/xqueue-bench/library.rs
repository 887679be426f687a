//! XQueue through the library: `TaskManager` on a Redis, memory or Kafka backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value as Json;
use xqueue_core::{
    memory, Backends, ManagerConfig, NewTask, Task, TaskError, TaskHandler, TaskManager,
};
use xqueue_redis::{RedisBackend, RedisConfig};

use crate::latency::{now_ns, payload, sent_ns, steady, Probe};
use crate::redisx::RedisProbe;
use crate::report::{Report, Value};
use crate::sys::CpuMark;
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
    /// The table's group for this target.
    pub fn group(&self) -> &'static str {
        match self {
            Target::Redis => "redis (library)",
            Target::Memory => "memory (library)",
            #[cfg(feature = "kafka")]
            Target::Kafka { .. } => "kafka (library)",
        }
    }

    /// Kafka is measured for processing and latency only.
    fn measures_enqueue(&self) -> bool {
        match self {
            Target::Redis | Target::Memory => true,
            #[cfg(feature = "kafka")]
            Target::Kafka { .. } => false,
        }
    }

    fn uses_redis(&self) -> bool {
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

/// Runs every library measurement of `target`.
pub async fn run(ctx: &Ctx, target: Target, report: &mut Report) {
    let group = target.group();
    if target.measures_enqueue() {
        let r = enqueue_sequential(ctx, &target, report).await;
        failed(report, group, "enqueue one by one", r);
        let r = enqueue_concurrent(ctx, &target, report).await;
        failed(report, group, "enqueue concurrent", r);
        let r = enqueue_batched(ctx, &target, report).await;
        failed(report, group, "enqueue batched", r);
    }
    let r = processing(ctx, &target, report).await;
    failed(report, group, "processing", r);
    let r = latency(ctx, &target, report).await;
    failed(report, group, "submit→start", r);
}

/// A failed measurement becomes a "skipped" row instead of ending the run.
pub fn failed(report: &mut Report, group: &str, name: &str, result: crate::Result<()>) {
    if let Err(e) = result {
        tracing::error!(group, name, error = %e, "measurement failed");
        report.add(group, name, Value::Skipped { why: e.to_string() }, "");
    }
}

async fn cleanup(ctx: &Ctx, target: &Target, prefix: &str) {
    if target.uses_redis() {
        if let Ok(r) = ctx.redis() {
            if let Err(e) = r.delete_prefix(prefix).await {
                tracing::warn!(prefix, error = %e, "could not delete the measurement's keys");
            }
        }
    }
}

async fn enqueue_sequential(ctx: &Ctx, target: &Target, report: &mut Report) -> crate::Result<()> {
    let n = ctx.args.enqueue_tasks as u64;
    let prefix = ctx.prefix("enq1");
    let (m, _) = manager(ctx, target, &prefix, n).await?;
    let bar = ctx
        .progress
        .bar(&format!("{} enqueue 1x1", target.group()), n);
    let snap = ctx.snapshot_if(target.uses_redis()).await;
    let cpu = CpuMark::take(snap.cpu);
    let t0 = Instant::now();
    for i in 0..n {
        m.submit(NewTask::new(TASK_TYPE, payload(i, None))).await?;
        if i % 64 == 0 {
            bar.set_position(i);
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    bar.finish();
    let note = ctx.work_note(&snap, cpu, n).await;
    report.rate(
        target.group(),
        "enqueue one by one",
        n,
        secs,
        format!("sequential submit; {note}"),
    );
    drop(m);
    cleanup(ctx, target, &prefix).await;
    Ok(())
}

async fn enqueue_concurrent(ctx: &Ctx, target: &Target, report: &mut Report) -> crate::Result<()> {
    let n = ctx.args.enqueue_tasks as u64;
    let clients = ctx.args.clients as u64;
    let prefix = ctx.prefix("enqc");
    let (m, _) = manager(ctx, target, &prefix, n).await?;
    let done = Arc::new(AtomicU64::new(0));
    let tracker = ctx.progress.track(
        &format!("{} enqueue x{clients}", target.group()),
        n,
        done.clone(),
    );
    let snap = ctx.snapshot_if(target.uses_redis()).await;
    let cpu = CpuMark::take(snap.cpu);
    let t0 = Instant::now();
    let mut handles = Vec::new();
    for c in 0..clients {
        let m = m.clone();
        let done = done.clone();
        let share = n / clients + u64::from(c < n % clients);
        handles.push(tokio::spawn(async move {
            for i in 0..share {
                m.submit(NewTask::new(TASK_TYPE, payload(i, None))).await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, xqueue_core::Error>(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let secs = t0.elapsed().as_secs_f64();
    tracker.finish();
    let note = ctx.work_note(&snap, cpu, n).await;
    report.rate(
        target.group(),
        "enqueue concurrent",
        n,
        secs,
        format!("{clients} concurrent submitters, one task per call; {note}"),
    );
    drop(m);
    cleanup(ctx, target, &prefix).await;
    Ok(())
}

async fn enqueue_batched(ctx: &Ctx, target: &Target, report: &mut Report) -> crate::Result<()> {
    let n = ctx.args.enqueue_tasks.max(ctx.args.batch) as u64;
    let batch = ctx.args.batch;
    let prefix = ctx.prefix("enqb");
    let (m, _) = manager(ctx, target, &prefix, n).await?;
    let bar = ctx
        .progress
        .bar(&format!("{} enqueue batch", target.group()), n);
    let tasks: Vec<NewTask> = (0..n)
        .map(|i| NewTask::new(TASK_TYPE, payload(i, None)))
        .collect();
    let snap = ctx.snapshot_if(target.uses_redis()).await;
    let cpu = CpuMark::take(snap.cpu);
    let t0 = Instant::now();
    let mut sent = 0;
    for chunk in tasks.chunks(batch) {
        m.submit_batch(chunk.to_vec()).await?;
        sent += chunk.len() as u64;
        bar.set_position(sent);
    }
    let secs = t0.elapsed().as_secs_f64();
    bar.finish();
    let note = ctx.work_note(&snap, cpu, n).await;
    report.rate(
        target.group(),
        "enqueue batched",
        n,
        secs,
        format!("submit_batch of {batch}, sequential; {note}"),
    );
    drop(m);
    cleanup(ctx, target, &prefix).await;
    Ok(())
}

/// Queues `--tasks` tasks, then starts the manager and times until every one is recorded as
/// `success`. On Redis, also measures Redis memory per finished task.
async fn processing(ctx: &Ctx, target: &Target, report: &mut Report) -> crate::Result<()> {
    let n = ctx.args.tasks as u64;
    let group = target.group();
    let prefix = ctx.prefix("proc");
    let (m, probe) = manager(ctx, target, &prefix, n + 1000).await?;
    let memory_before = match target {
        Target::Redis => Some(ctx.redis()?.used_memory().await),
        _ => None,
    };

    let queued = Arc::new(AtomicU64::new(0));
    let tracker = ctx
        .progress
        .track(&format!("{group} queue"), n, queued.clone());
    let mut seq = 0;
    while seq < n {
        let k = (n - seq).min(1000);
        let chunk: Vec<NewTask> = (seq..seq + k)
            .map(|i| NewTask::new(TASK_TYPE, payload(i, None)))
            .collect();
        m.submit_batch(chunk).await?;
        seq += k;
        queued.store(seq, Ordering::Relaxed);
    }
    tracker.finish();

    let snap = ctx.snapshot_if(target.uses_redis()).await;
    let cpu = CpuMark::take(snap.cpu);
    let tracker = {
        let probe = probe.clone();
        ctx.progress
            .follow(&format!("{group} processing"), n, move || probe.count())
    };
    let start_ns = now_ns();
    let t0 = Instant::now();
    m.start().await?;
    let limit = Duration::from_secs(120).max(Duration::from_millis(n * 5));
    let all_started = probe.wait_for(n, limit).await;
    let handlers_secs = t0.elapsed().as_secs_f64();
    tracker.finish();
    if !all_started {
        m.shutdown(Duration::from_secs(5)).await;
        cleanup(ctx, target, &prefix).await;
        return Err(format!(
            "only {} of {n} tasks started within {limit:?}",
            probe.count()
        )
        .into());
    }
    // Done means recorded: the completer has written `success` for every task.
    let state = m.backends().state.clone();
    let recorded_by = Instant::now() + Duration::from_secs(60);
    loop {
        let c = state.counts().await?;
        if c.success >= n {
            break;
        }
        if Instant::now() > recorded_by {
            return Err(format!("only {} of {n} tasks recorded as success", c.success).into());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let first = probe
        .first_ns
        .load(Ordering::Relaxed)
        .saturating_sub(start_ns) as f64
        / 1e9;
    let work = ctx.work_note(&snap, cpu, n).await;
    report.rate(
        group,
        "processing",
        n,
        secs,
        format!(
            "{} workers, pre-queued, start() → all recorded success; handlers done at {handlers_secs:.2} s, first start at {:.0} ms; {work}",
            ctx.args.workers,
            first * 1000.0
        ),
    );

    if let (Some(before), Target::Redis) = (memory_before, target) {
        // One more publish trims the acked entries from the stream, as in steady use.
        let before_extra = probe.count();
        m.submit(NewTask::new(TASK_TYPE, payload(n, None))).await?;
        probe
            .wait_for(before_extra + 1, Duration::from_secs(10))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = ctx.redis()?.used_memory().await;
        report.add(
            "redis memory",
            "per finished task",
            Value::Bytes {
                bytes: after.saturating_sub(before) as f64 / (n + 1) as f64,
            },
            format!(
                "INFO used_memory after {n} tasks finished with the default retention (1 h): {} → {} bytes",
                before, after
            ),
        );
    }
    m.shutdown(Duration::from_secs(5)).await;
    cleanup(ctx, target, &prefix).await;
    Ok(())
}

/// Submit→start at a steady rate, then one task at a time on an idle pool.
async fn latency(ctx: &Ctx, target: &Target, report: &mut Report) -> crate::Result<()> {
    let group = target.group();
    let prefix = ctx.prefix("lat");
    let rate = ctx.args.rate;
    let total = rate as u64 * ctx.args.latency_secs;
    let (m, probe) = manager(ctx, target, &prefix, total + 1000).await?;
    m.start().await?;
    warm_up(&m, &probe).await?;

    let bar = ctx
        .progress
        .bar(&format!("{group} latency @{rate}/s"), total);
    let snap = ctx.snapshot_if(target.uses_redis()).await;
    let cpu = CpuMark::take(snap.cpu);
    let run = {
        let m = m.clone();
        steady(
            &probe,
            rate,
            ctx.args.latency_secs as f64,
            ctx.args.warmup_secs(),
            &bar,
            move |seq, sent| {
                let m = m.clone();
                async move {
                    m.submit(NewTask::new(TASK_TYPE, payload(seq, Some(sent))))
                        .await
                        .is_ok()
                }
            },
        )
        .await
    };
    let work = ctx.work_note(&snap, cpu, run.sent).await;
    report.add(
        group,
        &format!("submit→start @{rate}/s"),
        Value::Latency(run.latency.clone()),
        format!("{}; {work}", run.note(rate)),
    );

    let idle = idle(ctx, &m, &probe, &format!("{group} idle worker")).await;
    report.add(
        group,
        "idle worker submit→start",
        Value::Latency(idle),
        format!(
            "{} tasks one at a time, 10–30 ms apart, pool idle (fetch blocked)",
            ctx.args.idle_samples
        ),
    );
    m.shutdown(Duration::from_secs(5)).await;
    cleanup(ctx, target, &prefix).await;
    Ok(())
}

/// Runs a few tasks so that connections, groups and scripts exist before measuring.
pub async fn warm_up(m: &TaskManager, probe: &Probe) -> crate::Result<()> {
    let base = probe.count();
    for i in 0..20 {
        m.submit(NewTask::new(TASK_TYPE, payload(i, None))).await?;
    }
    if !probe.wait_for(base + 20, Duration::from_secs(60)).await {
        return Err("the warm-up tasks did not run within 60 s".into());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// One task at a time on an idle pool: submit, wait for it to start, pause 10–30 ms.
pub async fn idle(
    ctx: &Ctx,
    m: &TaskManager,
    probe: &Probe,
    label: &str,
) -> crate::latency::LatencySummary {
    let samples = ctx.args.idle_samples as u64;
    let bar = ctx.progress.bar(label, samples);
    probe.record_from(0);
    for i in 0..samples {
        // A pseudo-random pause, so that submissions land anywhere in the fetch's block.
        let pause = 10 + (i * 7919) % 21;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let base = probe.count();
        let task = NewTask::new(TASK_TYPE, payload(i, Some(now_ns())));
        if m.submit(task).await.is_ok() {
            probe.wait_for(base + 1, Duration::from_secs(5)).await;
        }
        bar.set_position(i + 1);
    }
    bar.finish();
    probe.recorder.summary()
}
