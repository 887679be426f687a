//! The XQueue measurements: enqueue rates, processing rate, submit→start latency; through
//! the library or HTTP, on any backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::Measure;
use crate::latency::{in_a_task, now_ns, steady, LatencySummary, Probe};
use crate::report::{Report, Value};
use crate::setup::Target;
use crate::submit::{Rig, Submitter, Via};
use crate::sys::{with_steal, CpuMark, Steal};
use crate::Ctx;

/// Runs every measurement of `target` reached `via` the library or HTTP.
pub async fn run(ctx: &Ctx, target: Target, via: Via, report: &mut Report) {
    let group = target.group(via);
    let m = Measurer {
        ctx,
        target: &target,
        via,
        group: &group,
    };
    if target.measures_enqueue() && ctx.args.measures(Measure::Enqueue) {
        let r = m.enqueue_sequential(report).await;
        failed(report, &group, "enqueue one by one", r);
        let r = m.enqueue_concurrent(report).await;
        failed(report, &group, "enqueue concurrent", r);
        let r = m.enqueue_batched(report).await;
        failed(report, &group, "enqueue batched", r);
    }
    // Processing does not depend on how the tasks were submitted: measured once, via the
    // library.
    if via == Via::Library && ctx.args.measures(Measure::Processing) {
        let r = m.processing(report).await;
        failed(report, &group, "processing", r);
    }
    if target.measures_latency() && ctx.args.measures(Measure::Latency) {
        let r = m.latency(report).await;
        failed(report, &group, "submit→start", r);
    }
}

/// A failed measurement becomes a "skipped" row instead of ending the run.
pub fn failed(report: &mut Report, group: &str, name: &str, result: crate::Result<()>) {
    if let Err(e) = result {
        tracing::error!(group, name, error = %e, "measurement failed");
        report.add(group, name, Value::Skipped { why: e.to_string() }, "");
    }
}

/// One timed processing run of pre-queued tasks.
struct Processed {
    /// Seconds from `from` until every task was recorded as `success`.
    secs: f64,
    from: &'static str,
    handlers_secs: f64,
    first_ms: f64,
    /// CPU and Redis work per task.
    work: String,
}

/// The processing rate (tasks/s) of `target` through the library, measured as the
/// processing row is, in keys of its own (`round` tells them apart) that are deleted after.
pub async fn processing_rate(ctx: &Ctx, target: &Target, round: usize) -> crate::Result<f64> {
    let group = target.group(Via::Library);
    let m = Measurer {
        ctx,
        target,
        via: Via::Library,
        group: &group,
    };
    let (mut rig, prefix) = m
        .rig(&format!("proc-round{round}"), ctx.args.tasks as u64 + 1000)
        .await?;
    let run = m.pre_queued(&mut rig).await;
    m.cleanup(rig, &prefix).await;
    Ok(ctx.args.tasks as f64 / run?.secs)
}

struct Measurer<'a> {
    ctx: &'a Ctx,
    target: &'a Target,
    via: Via,
    group: &'a str,
}

impl Measurer<'_> {
    async fn rig(&self, what: &str, max_len: u64) -> crate::Result<(Rig, String)> {
        let prefix = self.ctx.prefix(what);
        let rig = Rig::new(self.ctx, self.target, &prefix, max_len, self.via).await?;
        Ok((rig, prefix))
    }

    async fn cleanup(&self, rig: Rig, prefix: &str) {
        rig.close().await;
        if self.target.uses_redis() {
            if let Ok(r) = self.ctx.redis() {
                if let Err(e) = r.delete_prefix(prefix).await {
                    tracing::warn!(prefix, error = %e, "could not delete the measurement's keys");
                }
            }
        }
    }

    fn label(&self, what: &str) -> String {
        format!("{} {what}", self.group)
    }

    async fn enqueue_sequential(&self, report: &mut Report) -> crate::Result<()> {
        let ctx = self.ctx;
        let n = ctx.args.enqueue_tasks as u64;
        let (rig, prefix) = self.rig("enq1", n).await?;
        let bar = ctx.progress.bar(&self.label("enqueue 1x1"), n);
        let snap = ctx.snapshot_if(self.target.uses_redis()).await;
        let cpu = CpuMark::take(snap.cpu);
        let t0 = Instant::now();
        for i in 0..n {
            rig.submitter.one(i, None).await?;
            if i % 64 == 0 {
                bar.set_position(i);
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        bar.finish();
        let note = ctx.work_note(&snap, cpu, n).await;
        report.rate(
            self.group,
            "enqueue one by one",
            n,
            secs,
            format!("sequential, one task per call; {note}"),
        );
        self.cleanup(rig, &prefix).await;
        Ok(())
    }

    async fn enqueue_concurrent(&self, report: &mut Report) -> crate::Result<()> {
        let ctx = self.ctx;
        let n = ctx.args.enqueue_tasks as u64;
        let clients = ctx.args.clients as u64;
        let (rig, prefix) = self.rig("enqc", n).await?;
        let done = Arc::new(AtomicU64::new(0));
        let tracker =
            ctx.progress
                .track(&self.label(&format!("enqueue x{clients}")), n, done.clone());
        let snap = ctx.snapshot_if(self.target.uses_redis()).await;
        let cpu = CpuMark::take(snap.cpu);
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for c in 0..clients {
            let submitter: Submitter = rig.submitter.clone();
            let done = done.clone();
            let share = n / clients + u64::from(c < n % clients);
            handles.push(tokio::spawn(async move {
                for i in 0..share {
                    submitter.one(i, None).await?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }));
        }
        for h in handles {
            h.await??;
        }
        let secs = t0.elapsed().as_secs_f64();
        tracker.finish();
        let note = ctx.work_note(&snap, cpu, n).await;
        report.rate(
            self.group,
            "enqueue concurrent",
            n,
            secs,
            format!("{clients} concurrent clients, one task per call; {note}"),
        );
        self.cleanup(rig, &prefix).await;
        Ok(())
    }

    async fn enqueue_batched(&self, report: &mut Report) -> crate::Result<()> {
        let ctx = self.ctx;
        let batch = ctx.args.batch.min(1000) as u64;
        let n = (ctx.args.enqueue_tasks as u64).max(batch);
        let (rig, prefix) = self.rig("enqb", n).await?;
        let bar = ctx.progress.bar(&self.label("enqueue batch"), n);
        let snap = ctx.snapshot_if(self.target.uses_redis()).await;
        let cpu = CpuMark::take(snap.cpu);
        let t0 = Instant::now();
        let mut sent = 0;
        while sent < n {
            let k = (n - sent).min(batch);
            rig.submitter.batch(sent..sent + k).await?;
            sent += k;
            bar.set_position(sent);
        }
        let secs = t0.elapsed().as_secs_f64();
        bar.finish();
        let note = ctx.work_note(&snap, cpu, n).await;
        report.rate(
            self.group,
            "enqueue batched",
            n,
            secs,
            format!("{batch} tasks per call, sequential; {note}"),
        );
        self.cleanup(rig, &prefix).await;
        Ok(())
    }

    /// Queues `--tasks` tasks, then starts the manager and times until every one is
    /// recorded as `success`. On Redis, also measures Redis memory per finished task.
    async fn processing(&self, report: &mut Report) -> crate::Result<()> {
        let ctx = self.ctx;
        let n = ctx.args.tasks as u64;
        let redis_memory = matches!(self.target, Target::Redis);
        let memory_before = if redis_memory {
            Some(ctx.redis()?.used_memory().await)
        } else {
            None
        };
        let (mut rig, prefix) = self.rig("proc", n + 1000).await?;
        let run = match self.pre_queued(&mut rig).await {
            Ok(run) => run,
            Err(e) => {
                self.cleanup(rig, &prefix).await;
                return Err(e);
            }
        };
        report.rate(
            self.group,
            "processing",
            n,
            run.secs,
            format!(
                "{} workers, pre-queued, {} → all recorded success; handlers done at {:.2} s, first start {:.0} ms after start(); {}",
                ctx.args.workers, run.from, run.handlers_secs, run.first_ms, run.work,
            ),
        );

        if let Some(before) = memory_before {
            // One more publish trims the acked entries from the stream, as in steady use.
            let probe = &rig.probe;
            let base = probe.count();
            rig.submitter.one(n, None).await?;
            probe.wait_for(base + 1, Duration::from_secs(10)).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let after = ctx.redis()?.used_memory().await;
            report.add(
                "redis memory",
                "per finished task",
                Value::Bytes {
                    bytes: after.saturating_sub(before) as f64 / (n + 1) as f64,
                },
                format!(
                    "INFO used_memory before queueing and after {} tasks finished, default retention (1 h): {before} → {after} bytes",
                    n + 1
                ),
            );
        }
        self.cleanup(rig, &prefix).await;
        Ok(())
    }

    /// Queues `--tasks` tasks on `rig`'s stopped pool, then starts it and times it until the
    /// state store has recorded every task as `success`.
    async fn pre_queued(&self, rig: &mut Rig) -> crate::Result<Processed> {
        let ctx = self.ctx;
        let n = ctx.args.tasks as u64;
        let probe = rig.probe.clone();
        let queued = Arc::new(AtomicU64::new(0));
        let tracker = ctx.progress.track(&self.label("queue"), n, queued.clone());
        let mut seq = 0;
        while seq < n {
            let k = (n - seq).min(1000);
            rig.submitter.batch(seq..seq + k).await?;
            seq += k;
            queued.store(seq, Ordering::Relaxed);
        }
        tracker.finish();

        let snap = ctx.snapshot_if(self.target.uses_redis()).await;
        let cpu = CpuMark::take(snap.cpu);
        let tracker = {
            let probe = probe.clone();
            ctx.progress
                .follow(&self.label("processing"), n, move || probe.count())
        };
        let start_ns = now_ns();
        let t0 = Instant::now();
        rig.start().await?;
        let limit = Duration::from_secs(120).max(Duration::from_millis(n * 5));
        let all_started = probe.wait_for(n, limit).await;
        let handlers_secs = t0.elapsed().as_secs_f64();
        tracker.finish();
        if !all_started {
            let started = probe.count();
            return Err(format!("only {started} of {n} tasks started within {limit:?}").into());
        }
        // Done means recorded: the completer has written `success` for every task.
        let state = rig.manager.backends().state.clone();
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
        let total_secs = t0.elapsed().as_secs_f64();
        let first_ms = probe
            .first_ns
            .load(Ordering::Relaxed)
            .saturating_sub(start_ns) as f64
            / 1e6;
        let work = ctx.work_note(&snap, cpu, n).await;
        // A Kafka consumer group takes seconds to join (the broker waits out the rebalance
        // delay): time from the first start there, from start() everywhere else.
        let (secs, from) = if self.target.joins_a_group() {
            (total_secs - first_ms / 1000.0, "first start")
        } else {
            (total_secs, "start()")
        };
        Ok(Processed {
            secs,
            from,
            handlers_secs,
            first_ms,
            work,
        })
    }

    /// Submit→start at a steady rate, then one task at a time on an idle pool.
    async fn latency(&self, report: &mut Report) -> crate::Result<()> {
        let ctx = self.ctx;
        let rate = ctx.args.rate;
        let total = rate as u64 * ctx.args.latency_secs;
        let (mut rig, prefix) = self.rig("lat", total + 1000).await?;
        rig.start().await?;
        warm_up(&rig.submitter, &rig.probe).await?;

        let bar = ctx
            .progress
            .bar(&self.label(&format!("latency @{rate}/s")), total);
        let snap = ctx.snapshot_if(self.target.uses_redis()).await;
        let cpu = CpuMark::take(snap.cpu);
        let run = {
            let submitter = rig.submitter.clone();
            steady(
                &rig.probe,
                rate,
                ctx.args.latency_secs as f64,
                ctx.args.warmup_secs(),
                &bar,
                move |seq, sent| {
                    let submitter = submitter.clone();
                    async move { submitter.one(seq, Some(sent)).await.is_ok() }
                },
            )
            .await
        };
        let work = ctx.work_note(&snap, cpu, run.sent).await;
        report.add(
            self.group,
            &format!("submit→start @{rate}/s"),
            Value::Latency(run.latency.clone()),
            format!("{}; {work}", run.note(rate)),
        );

        let steal = Steal::take();
        let idle = idle_pool(ctx, &rig.submitter, &rig.probe, &self.label("idle worker")).await;
        report.add(
            self.group,
            "idle worker submit→start",
            Value::Latency(idle),
            with_steal(
                format!(
                    "{} tasks one at a time, 10–30 ms apart, pool idle (fetch blocked)",
                    ctx.args.idle_samples
                ),
                steal,
            ),
        );
        if self.via == Via::Library && rig.manager.backends().queue_is_state() {
            // The same, submitted by an instance that runs no workers: no start on submit, so
            // the fetch → `begin` path of a worker on another instance.
            let elsewhere = crate::setup::submit_only(ctx, &rig.manager, &rig.probe)?;
            let label = self.label("idle worker, remote submit");
            let steal = Steal::take();
            let remote = idle_pool(ctx, &elsewhere, &rig.probe, &label).await;
            report.add(
                self.group,
                "idle worker, submitted elsewhere",
                Value::Latency(remote),
                with_steal(
                    format!(
                        "as above, submitted through a second task manager that runs no workers: the fetch and begin path (no start on submit); {} tasks",
                        ctx.args.idle_samples
                    ),
                    steal,
                ),
            );
        }
        self.cleanup(rig, &prefix).await;
        Ok(())
    }
}

/// Runs a few tasks so that connections, groups and scripts exist before measuring.
async fn warm_up(submitter: &Submitter, probe: &Probe) -> crate::Result<()> {
    let base = probe.count();
    for i in 0..20 {
        submitter.one(i, None).await?;
    }
    if !probe.wait_for(base + 20, Duration::from_secs(60)).await {
        return Err("the warm-up tasks did not run within 60 s".into());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// One task at a time on an idle pool: submit, wait for it to start, pause 10–30 ms.
async fn idle_pool(ctx: &Ctx, submitter: &Submitter, probe: &Probe, label: &str) -> LatencySummary {
    let samples = ctx.args.idle_samples as u64;
    let bar = ctx.progress.bar(label, samples);
    probe.record_from(0);
    for i in 0..samples {
        // A pseudo-random pause, so that submissions land anywhere in the fetch's block.
        let pause = 10 + (i * 7919) % 21;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let base = probe.count();
        let submitter = submitter.clone();
        let submitted = in_a_task(async move { submitter.one(i, Some(now_ns())).await.is_ok() });
        if matches!(submitted.await, Ok(true)) {
            probe.wait_for(base + 1, Duration::from_secs(5)).await;
        }
        bar.set_position(i + 1);
    }
    bar.finish();
    probe.recorder.summary()
}
