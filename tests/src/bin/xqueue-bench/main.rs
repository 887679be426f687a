//! `xqueue-bench`: XQueue's throughput and latency, measured against what Redis itself allows.
//!
//! One run against one Redis (a container started from a local image, or `--redis-url`):
//! a raw Redis Streams baseline, XQueue through the library and through HTTP, the memory
//! backend (and Kafka with `--features kafka`), memory use; a table (or `--json`) at the end.
//! See BENCHMARKS.md at the repository root for the method and the numbers.
//!
//! ```text
//! cargo build --release -p xqueue-server
//! cargo run --release -p xqueue-tests --bin xqueue-bench            # full run
//! cargo run --release -p xqueue-tests --bin xqueue-bench -- --quick # smoke run
//! ```

/// The allocator the server uses (see `xqueue-server`'s main.rs), for every phase alike: the
/// raw baseline and XQueue run in this one process.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod cli;
mod latency;
mod phases;
mod progress;
mod raw;
mod redisx;
mod report;
mod rounds;
mod rss;
mod setup;
mod submit;
mod sys;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Args, Phase};
use crate::progress::Progress;
use crate::redisx::{RedisProbe, Snapshot};
use crate::report::{Check, Report, Value};
use crate::setup::Target;
use crate::submit::Via;
use crate::sys::{CpuMark, Machine, PollIdle};

/// The bench's own plumbing errors: anything, as text.
pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What every measurement needs.
pub struct Ctx {
    /// The settings.
    pub args: Args,
    /// Progress bars.
    pub progress: Progress,
    redis: Option<RedisProbe>,
    run_id: String,
}

impl Ctx {
    /// The Redis under test.
    pub fn redis(&self) -> Result<&RedisProbe> {
        self.redis
            .as_ref()
            .ok_or_else(|| "this phase needs Redis".into())
    }

    /// A key prefix of its own for one measurement.
    pub fn prefix(&self, what: &str) -> String {
        format!("xqbench-{}-{what}", self.run_id)
    }

    /// Redis's command counts and CPU now (empty without Redis).
    pub async fn snapshot(&self) -> Snapshot {
        match &self.redis {
            Some(r) => r.snapshot().await,
            None => Snapshot {
                cpu: f64::NAN,
                ..Snapshot::default()
            },
        }
    }

    /// CPU use since `cpu`, and Redis commands per task since `snap` (when `snap` was taken
    /// on Redis: see [`Ctx::snapshot_if`]).
    pub async fn work_note(&self, snap: &Snapshot, cpu: CpuMark, tasks: u64) -> String {
        if snap.cpu.is_nan() {
            return cpu.note_until(f64::NAN);
        }
        let later = self.snapshot().await;
        let cpu = cpu.note_until(later.cpu);
        if std::env::var_os("XQUEUE_BENCH_COMMANDSTATS").is_some() {
            eprintln!(
                "commandstats over {tasks} tasks:\n{}",
                snap.detail(&later, tasks)
            );
        }
        format!("{cpu}; {}", snap.per_task_note(&later, tasks))
    }

    /// [`Ctx::snapshot`] when the measurement uses Redis, else an empty one.
    pub async fn snapshot_if(&self, uses_redis: bool) -> Snapshot {
        if uses_redis {
            self.snapshot().await
        } else {
            Snapshot {
                cpu: f64::NAN,
                ..Snapshot::default()
            }
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse().resolved();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // The container helpers read the images from the environment; set before any thread.
    if std::env::var_os("XQUEUE_REDIS_IMAGE").is_none() {
        std::env::set_var("XQUEUE_REDIS_IMAGE", &args.redis_image);
    }
    if std::env::var_os("XQUEUE_KAFKA_IMAGE").is_none() {
        std::env::set_var("XQUEUE_KAFKA_IMAGE", "xqueue-test/tansu:0.1.2");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xqueue-bench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = args.json;
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("xqueue-bench: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.table());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xqueue-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<Report> {
    // Held until the run ends: dropping it closes the file, which withdraws the request.
    let poll_idle = args
        .poll_idle
        .then(PollIdle::hold)
        .transpose()
        .map_err(|e| format!("--poll-idle: writing /dev/cpu_dma_latency: {e}"))?;
    let needs_redis = args.phases.iter().any(|p| *p != Phase::Memory);
    let ctx_args_via_proxy = args.via_docker_proxy;
    let mut container = None;
    let url = match (&args.redis_url, needs_redis) {
        (Some(url), _) => Some(url.clone()),
        (None, false) => None,
        (None, true) => {
            eprintln!(
                "starting Redis from {} (appendonly {}) …",
                args.redis_image,
                if args.aof { "yes" } else { "no" }
            );
            let aof = if args.aof { "yes" } else { "no" };
            let server = xqueue_tests::redis::RedisServer::start_with(&["--appendonly", aof])
                .await
                .ok_or("Docker is not available: start it, or give --redis-url")?;
            let url = direct_url(&server, ctx_args_via_proxy).await;
            container = Some(server);
            Some(url)
        }
    };
    let redis = match &url {
        Some(u) => Some(RedisProbe::connect(u).await?),
        None => None,
    };
    let (version, aof) = match &redis {
        Some(r) => {
            let aof = r.info("persistence").await?;
            (
                r.version().await,
                aof.get("aof_enabled").is_some_and(|v| v == "1"),
            )
        }
        None => ("not used".into(), false),
    };
    let mut report = Report {
        machine: Some(Machine::read(
            version,
            aof,
            url.as_deref().map(address_of).unwrap_or_default(),
            poll_idle.as_ref(),
        )),
        settings: serde_json::to_value(&args)?,
        ..Report::default()
    };
    let ctx = Ctx {
        progress: Progress::new(args.json),
        args,
        redis,
        run_id: uuid::Uuid::new_v4().simple().to_string()[..8].to_string(),
    };

    if ctx.args.runs(Phase::Raw) {
        if let Err(e) = raw::run(&ctx, &mut report).await {
            report.add(
                "raw baseline",
                "processing",
                Value::Skipped { why: e.to_string() },
                "",
            );
        }
    }
    if ctx.args.runs(Phase::Redis) {
        phases::run(&ctx, Target::Redis, Via::Library, &mut report).await;
    }
    if ctx.args.runs(Phase::RedisQueue) {
        phases::run(&ctx, Target::RedisQueue, Via::Library, &mut report).await;
    }
    if ctx.args.runs(Phase::Http) {
        phases::run(&ctx, Target::Redis, Via::Http, &mut report).await;
    }
    if ctx.args.runs(Phase::Memory) {
        phases::run(&ctx, Target::Memory, Via::Library, &mut report).await;
    }
    if ctx.args.runs(Phase::Kafka) {
        kafka(&ctx, &mut report).await;
    }
    if ctx.args.runs(Phase::Rss) {
        rss::run(&ctx, &mut report).await;
    }

    rounds::ratio(&ctx, &mut report).await;
    report.checks = checks(&report, &ctx.args);
    drop(container);
    drop(poll_idle);
    Ok(report)
}

/// `host:port` of a Redis URL (no credentials).
fn address_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let rest = rest.rsplit_once('@').map(|(_, r)| r).unwrap_or(rest);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// The container's bridge address when this host reaches it (no userland proxy in between),
/// else its published port.
async fn direct_url(server: &xqueue_tests::redis::RedisServer, via_proxy: bool) -> String {
    let published = server.url().to_string();
    if via_proxy {
        return published;
    }
    let ip = match server.container().get_bridge_ip_address().await {
        Ok(ip) => ip.to_string(),
        // Some daemons name the default network "default", which the API call cannot
        // inspect: ask the CLI.
        Err(_) => {
            let out = std::process::Command::new("docker")
                .args([
                    "inspect",
                    "-f",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                    server.container().id(),
                ])
                .output();
            match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                _ => String::new(),
            }
        }
    };
    if ip.is_empty() {
        return published;
    }
    let direct = format!("redis://{ip}:6379");
    let answers = async {
        let probe = RedisProbe::connect(&direct).await.ok()?;
        probe.info("server").await.ok()
    };
    match tokio::time::timeout(std::time::Duration::from_secs(2), answers).await {
        Ok(Some(_)) => direct,
        _ => published,
    }
}

#[cfg(feature = "kafka")]
async fn kafka(ctx: &Ctx, report: &mut Report) {
    eprintln!("starting the Kafka broker …");
    match xqueue_tests::kafka::KafkaBroker::start().await {
        Some(broker) => {
            let target = Target::Kafka {
                bootstrap: broker.bootstrap().to_string(),
            };
            phases::run(ctx, target, Via::Library, report).await;
        }
        None => report.add(
            "kafka (library)",
            "processing",
            Value::Skipped {
                why: "Docker is not available".into(),
            },
            "",
        ),
    }
}

#[cfg(not(feature = "kafka"))]
async fn kafka(_ctx: &Ctx, report: &mut Report) {
    report.add(
        "kafka (library)",
        "processing",
        Value::Skipped {
            why: "built without the kafka feature (--features kafka)".into(),
        },
        "",
    );
}

/// The targets of issue 7.
fn checks(report: &Report, args: &Args) -> Vec<Check> {
    let mut out = Vec::new();
    if let Some(ratio) = report.ratio {
        out.push(Check {
            target: "Redis processing ≥ 50 % of the raw baseline".into(),
            measured: format!("{:.1} %", ratio * 100.0),
            met: ratio >= 0.5,
        });
    }
    // The raw loop's own p99 in the same run, beside XQueue's: what the machine allowed.
    let raw_p99 = |name: &str| {
        report
            .latency_of(raw::GROUP_NAME, name)
            .filter(|l| l.count > 0)
            .map(|l| format!(" (raw loop's own: {})", report::ms(l.p99_us)))
            .unwrap_or_default()
    };
    let name = format!("submit→start @{}/s", args.rate);
    for (group, limit_ms) in [("redis (library)", 1.0), ("redis (http)", 2.0)] {
        if let Some(l) = report.latency_of(group, &name) {
            out.push(Check {
                target: format!(
                    "{group}: p99 submit→start < {limit_ms} ms at {}/s",
                    args.rate
                ),
                measured: format!("p99 {}{}", report::ms(l.p99_us), raw_p99(&name)),
                met: l.count > 0 && l.p99_us < limit_ms * 1000.0,
            });
        }
    }
    if let Some(l) = report.latency_of("redis (library)", "idle worker submit→start") {
        out.push(Check {
            target: "idle worker starts a just-submitted task within 1 ms (p99)".into(),
            measured: format!(
                "p99 {}, max {}{}",
                report::ms(l.p99_us),
                report::ms(l.max_us),
                raw_p99("idle consumer submit→start")
            ),
            met: l.count > 0 && l.p99_us < 1000.0,
        });
    }
    if let Some(b) = report.bytes_of("server rss", &rss::queued_name(args)) {
        out.push(Check {
            target: format!("server RSS < 60 MB with {} tasks queued", args.rss_tasks),
            measured: report::human_bytes(b),
            met: b < 60.0 * 1024.0 * 1024.0,
        });
    }
    out
}
