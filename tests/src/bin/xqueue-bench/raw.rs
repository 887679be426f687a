//! The ceiling: the minimal at-least-once lifecycle written directly on Redis Streams.
//!
//! Pipelined XADD of ~100-byte entries; `--workers` consumers, each on its own connection,
//! loop on `XREADGROUP … COUNT 64 BLOCK`; per batch one pipeline of `HSET … processing` (the
//! start of the tasks), then one of `HSET … done` plus the batch's XACK. No Lua, no retries,
//! no limits, no priorities: what no Redis-Streams queue can beat on this machine.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;

use crate::latency::{steady, Probe};
use crate::report::Report;
use crate::sys::{with_steal, CpuMark, Steal};
use crate::Ctx;

const GROUP: &str = "raw";
const COUNT: usize = 64;
/// The rows' group in the report.
pub const GROUP_NAME: &str = "raw baseline";

/// Runs the raw baseline: enqueue, processing, and latency at the steady rate.
pub async fn run(ctx: &Ctx, report: &mut Report) -> crate::Result<()> {
    let redis = ctx.redis()?;
    let prefix = ctx.prefix("raw");
    let stream = format!("{prefix}:stream");
    let mut conn = redis.conn();
    create_group(&mut conn, &stream, "0").await?;

    // Enqueue: pipelined XADD, 1000 per pipeline.
    let n = ctx.args.tasks as u64;
    let snap = ctx.snapshot().await;
    let cpu = CpuMark::take(snap.cpu);
    let secs = fill(ctx, &mut conn, &stream, n, "raw enqueue (pipelined)").await?;
    let note = ctx.work_note(&snap, cpu, n).await;
    report.rate(
        GROUP_NAME,
        "enqueue (pipelined XADD)",
        n,
        secs,
        format!("1000 per pipeline, ~100-byte entries; {note}"),
    );

    let (secs, note) = drain(ctx, &prefix, &stream, "raw processing").await?;
    report.rate(
        GROUP_NAME,
        "processing",
        n,
        secs,
        format!(
            "{} consumers, XREADGROUP COUNT {COUNT} BLOCK, 2 pipelined HSET/task, XACK/batch; {note}",
            ctx.args.workers
        ),
    );
    ctx.redis()?.delete_prefix(&prefix).await?;

    // Latency at the steady rate: one XADD per task; "start" is after the processing HSETs.
    let shared = Arc::new(Shared::new(u64::MAX, &prefix, &stream));
    create_group(&mut conn, &stream, "$").await?;
    let probe = Arc::new(Probe::default());
    let consumers = start_consumers(ctx, &shared, &probe, 1000).await?;
    shared.go.store(true, Ordering::Release);
    let rate = ctx.args.rate;
    let latency_conn = conn.clone();
    let bar = ctx.progress.bar(
        &format!("raw latency @{rate}/s"),
        rate as u64 * ctx.args.latency_secs,
    );
    let steal = Steal::take();
    let run = {
        let stream = stream.clone();
        steady(
            &probe,
            rate,
            ctx.args.latency_secs as f64,
            ctx.args.warmup_secs(),
            &bar,
            move |seq, sent| {
                let mut conn = latency_conn.clone();
                let stream = stream.clone();
                async move {
                    let id = uuid::Uuid::now_v7().to_string();
                    let r: redis::RedisResult<String> = redis::cmd("XADD")
                        .arg(&stream)
                        .arg("*")
                        .arg("task_id")
                        .arg(id)
                        .arg("payload")
                        .arg(format!("{{\"seq\":{seq},\"sent_ns\":{sent}}}"))
                        .arg("sent_ns")
                        .arg(sent)
                        .query_async(&mut conn)
                        .await;
                    r.is_ok()
                }
            },
        )
        .await
    };
    report.add(
        GROUP_NAME,
        &format!("submit→start @{rate}/s"),
        crate::report::Value::Latency(run.latency.clone()),
        with_steal(
            format!("XADD → XREADGROUP → HSET processing; {}", run.note(rate)),
            steal,
        ),
    );

    // Idle consumers: one entry at a time, as for XQueue's idle worker.
    let samples = ctx.args.idle_samples as u64;
    let bar = ctx.progress.bar("raw idle consumer", samples);
    probe.record_from(0);
    let steal = Steal::take();
    let conn = redis.conn();
    for i in 0..samples {
        let pause = 10 + (i * 7919) % 21;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let base = probe.count();
        let (mut conn, stream) = (conn.clone(), stream.clone());
        let _: String = crate::latency::in_a_task(async move {
            redis::cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("task_id")
                .arg(uuid::Uuid::now_v7().to_string())
                .arg("sent_ns")
                .arg(crate::latency::now_ns())
                .query_async(&mut conn)
                .await
        })
        .await??;
        probe.wait_for(base + 1, Duration::from_secs(5)).await;
        bar.set_position(i + 1);
    }
    bar.finish();
    report.add(
        GROUP_NAME,
        "idle consumer submit→start",
        crate::report::Value::Latency(probe.recorder.summary()),
        with_steal(
            format!(
                "{samples} entries one at a time, 10–30 ms apart, consumers blocked in XREADGROUP"
            ),
            steal,
        ),
    );
    shared.stop.store(true, Ordering::Release);
    for c in consumers {
        c.await??;
    }
    ctx.redis()?.delete_prefix(&prefix).await?;
    Ok(())
}

/// The raw processing rate (tasks/s), measured as the processing row is, in keys of its own
/// (`round` tells them apart) that are deleted after.
pub async fn processing_rate(ctx: &Ctx, round: usize) -> crate::Result<f64> {
    let redis = ctx.redis()?;
    let prefix = ctx.prefix(&format!("raw-round{round}"));
    let stream = format!("{prefix}:stream");
    let mut conn = redis.conn();
    create_group(&mut conn, &stream, "0").await?;
    let n = ctx.args.tasks as u64;
    let run = async {
        fill(ctx, &mut conn, &stream, n, "raw queue").await?;
        drain(ctx, &prefix, &stream, "raw processing").await
    }
    .await;
    redis.delete_prefix(&prefix).await?;
    Ok(n as f64 / run?.0)
}

/// Creates the consumers' group on `stream` (and the stream), reading from entry `from`
/// (`0`: everything, `$`: only what comes next).
async fn create_group(
    conn: &mut MultiplexedConnection,
    stream: &str,
    from: &str,
) -> crate::Result<()> {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(GROUP)
        .arg(from)
        .arg("MKSTREAM")
        .query_async(conn)
        .await?;
    Ok(())
}

/// Appends `n` ~100-byte entries to `stream`, 1000 `XADD`s per pipeline; returns the
/// seconds it took.
async fn fill(
    ctx: &Ctx,
    conn: &mut MultiplexedConnection,
    stream: &str,
    n: u64,
    label: &str,
) -> crate::Result<f64> {
    let pad = "x".repeat(40);
    let bar = ctx.progress.bar(label, n);
    let t0 = Instant::now();
    let mut seq = 0;
    while seq < n {
        let k = (n - seq).min(1000);
        let mut pipe = redis::pipe();
        for i in seq..seq + k {
            let id = uuid::Uuid::now_v7().to_string();
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("task_id")
                .arg(id)
                .arg("payload")
                .arg(format!("{{\"seq\":{i},\"pad\":\"{pad}\"}}"))
                .ignore();
        }
        let _: () = pipe.query_async(conn).await?;
        seq += k;
        bar.set_position(seq);
    }
    bar.finish();
    Ok(t0.elapsed().as_secs_f64())
}

/// Runs `--workers` consumers over the `--tasks` entries of `stream` until every one is
/// processed; returns the seconds it took and the work per task.
async fn drain(ctx: &Ctx, prefix: &str, stream: &str, label: &str) -> crate::Result<(f64, String)> {
    let n = ctx.args.tasks as u64;
    let shared = Arc::new(Shared::new(n, prefix, stream));
    let probe = Arc::new(Probe::default());
    let consumers = start_consumers(ctx, &shared, &probe, 100).await?;
    let tracker = {
        let s = shared.clone();
        ctx.progress
            .follow(label, n, move || s.processed.load(Ordering::Relaxed))
    };
    let snap = ctx.snapshot().await;
    let cpu = CpuMark::take(snap.cpu);
    let t0 = Instant::now();
    shared.go.store(true, Ordering::Release);
    let deadline = Instant::now() + Duration::from_secs(120).max(Duration::from_millis(n));
    while shared.processed.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let done_at = shared
        .done_at
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_else(Instant::now);
    let secs = done_at.duration_since(t0).as_secs_f64();
    tracker.finish();
    let processed = shared.processed.load(Ordering::Relaxed);
    let note = ctx.work_note(&snap, cpu, processed).await;
    shared.stop.store(true, Ordering::Release);
    for c in consumers {
        c.await??;
    }
    if processed < n {
        return Err(format!("raw consumers processed only {processed} of {n}").into());
    }
    Ok((secs, note))
}

struct Shared {
    target: u64,
    prefix: String,
    stream: String,
    processed: AtomicU64,
    done_at: Mutex<Option<Instant>>,
    go: AtomicBool,
    stop: AtomicBool,
}

impl Shared {
    fn new(target: u64, prefix: &str, stream: &str) -> Shared {
        Shared {
            target,
            prefix: prefix.to_string(),
            stream: stream.to_string(),
            processed: AtomicU64::new(0),
            done_at: Mutex::new(None),
            go: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        }
    }
}

type Consumer = tokio::task::JoinHandle<crate::Result<()>>;

async fn start_consumers(
    ctx: &Ctx,
    shared: &Arc<Shared>,
    probe: &Arc<Probe>,
    block_ms: u64,
) -> crate::Result<Vec<Consumer>> {
    let mut out = Vec::new();
    for i in 0..ctx.args.workers {
        // A blocking read needs a connection of its own, with no response timeout below BLOCK.
        let conn = ctx.redis()?.dedicated(None).await?;
        let shared = shared.clone();
        let probe = probe.clone();
        out.push(tokio::spawn(consume(
            conn,
            format!("c{i}"),
            shared,
            probe,
            block_ms,
        )));
    }
    Ok(out)
}

async fn consume(
    mut conn: MultiplexedConnection,
    name: String,
    shared: Arc<Shared>,
    probe: Arc<Probe>,
    block_ms: u64,
) -> crate::Result<()> {
    while !shared.go.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while !shared.stop.load(Ordering::Acquire)
        && shared.processed.load(Ordering::Relaxed) < shared.target
    {
        let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&name)
            .arg("COUNT")
            .arg(COUNT)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&shared.stream)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let Some(reply) = reply else { continue };
        let entries: Vec<_> = reply.keys.into_iter().flat_map(|k| k.ids).collect();
        if entries.is_empty() {
            continue;
        }
        let task_key = |e: &redis::streams::StreamId| {
            let id: String = e.get("task_id").unwrap_or_default();
            format!("{}:task:{id}", shared.prefix)
        };
        let mut begin = redis::pipe();
        for e in &entries {
            begin
                .cmd("HSET")
                .arg(task_key(e))
                .arg("status")
                .arg("processing")
                .arg("worker")
                .arg(&name)
                .ignore();
        }
        let _: () = begin.query_async(&mut conn).await?;
        for e in &entries {
            let sent: Option<u64> = e.get("sent_ns");
            probe.observe(sent);
        }
        let mut finish = redis::pipe();
        for e in &entries {
            finish
                .cmd("HSET")
                .arg(task_key(e))
                .arg("status")
                .arg("done")
                .ignore();
        }
        let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        finish
            .cmd("XACK")
            .arg(&shared.stream)
            .arg(GROUP)
            .arg(&ids)
            .ignore();
        let _: () = finish.query_async(&mut conn).await?;
        let total = shared
            .processed
            .fetch_add(entries.len() as u64, Ordering::Relaxed)
            + entries.len() as u64;
        if total >= shared.target {
            shared
                .done_at
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(Instant::now);
        }
    }
    Ok(())
}
