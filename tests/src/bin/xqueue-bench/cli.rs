//! Command-line settings of `xqueue-bench`.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// One part of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The ceiling: a minimal at-least-once loop written directly on Redis Streams.
    Raw,
    /// XQueue's Redis backend through the library (`TaskManager`).
    Redis,
    /// Diagnostic, processing only: XQueue's pool on the Redis backend's queues with the task
    /// state in memory. Not a deployment (the state dies with the process): it shows how much
    /// of the gap to the raw baseline is the state store's.
    RedisQueue,
    /// XQueue's Redis backend through the REST API (xqueue-server's router, in process).
    Http,
    /// The in-memory backend through the library.
    Memory,
    /// Kafka queues through the library (needs `--features kafka`).
    Kafka,
    /// The server binary's RSS (idle and with tasks queued) and Redis memory per finished task.
    Rss,
}

/// One measurement of the library and HTTP phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// Enqueue rates.
    Enqueue,
    /// Processing rate of pre-queued tasks.
    Processing,
    /// Submit→start latency at the steady rate, and on an idle pool.
    Latency,
}

/// Benchmarks XQueue against the limit of the broker underneath: one run against one Redis,
/// a table (or JSON) at the end.
#[derive(Clone, Debug, Parser, serde::Serialize)]
#[command(name = "xqueue-bench", version)]
pub struct Args {
    /// Redis to run against. By default a container is started from `--redis-image` and
    /// removed at the end.
    #[arg(long, env = "XQUEUE_BENCH_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Image of the Redis container started when no `--redis-url` is given (a local image:
    /// `bash scripts/build-images.sh` builds the default).
    #[arg(
        long,
        env = "XQUEUE_REDIS_IMAGE",
        default_value = "xqueue-test/redis:7.0.15"
    )]
    pub redis_image: String,

    /// Start the Redis container with the append-only file on (`appendfsync everysec`, what
    /// XQueue's durability promise needs). Default off: Redis's own default, and what the
    /// reference figures were measured with. Ignored with `--redis-url`.
    #[arg(long)]
    pub aof: bool,

    /// Reach the Redis container through its published port (Docker's userland proxy, one
    /// more hop per round trip) instead of its bridge address.
    #[arg(long)]
    pub via_docker_proxy: bool,

    /// Tasks processed by the processing phases (and the raw baseline).
    #[arg(long, default_value_t = 100_000)]
    pub tasks: usize,

    /// Tasks submitted by each enqueue measurement.
    #[arg(long, default_value_t = 20_000)]
    pub enqueue_tasks: usize,

    /// Tasks per `submit_batch` call (and per `POST /tasks/batch`).
    #[arg(long, default_value_t = 100)]
    pub batch: usize,

    /// Worker slots of the task manager (and consumers of the raw baseline).
    #[arg(long, default_value_t = 10)]
    pub workers: usize,

    /// Concurrent submitters of the "concurrent" enqueue measurements.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,

    /// Submissions per second of the latency measurements.
    #[arg(long, default_value_t = 500)]
    pub rate: u32,

    /// Length of each latency measurement, in seconds (the first second is warm-up).
    #[arg(long, default_value_t = 20)]
    pub latency_secs: u64,

    /// Tasks submitted one at a time to an idle pool.
    #[arg(long, default_value_t = 200)]
    pub idle_samples: usize,

    /// Tasks queued in the server while its RSS is measured.
    #[arg(long, default_value_t = 100_000)]
    pub rss_tasks: usize,

    /// The `xqueue-server` binary for the RSS phase. Default: next to this binary
    /// (`cargo build --release -p xqueue-server`).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,

    /// Phases to run, comma-separated. Default: all (kafka only when built with
    /// `--features kafka`).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub phases: Vec<Phase>,

    /// Library measurements to take, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub measure: Vec<Measure>,

    /// Back-to-back pairs (raw baseline, then XQueue-Redis processing, `--tasks` each) measured
    /// after the phases; the ratio printed and checked is the median of their ratios, which a
    /// VM's slow and fast spells move far less than the two processing rows minutes apart.
    /// 0: the ratio of those two rows. Needs the raw and redis phases and the processing
    /// measurement.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// Hold a CPU-latency request of 0 µs (`/dev/cpu_dma_latency`, needs root) for the whole
    /// run, as a host tuned for latency does: idle CPUs poll instead of halting, at the cost
    /// of spinning while idle. On a virtual machine a halted vCPU waits for its host to run
    /// it again before it can take a wake-up; the header of the table says which idle mode
    /// the run had.
    #[arg(long)]
    pub poll_idle: bool,

    /// A short smoke run: small counts, 2-second latency runs, one ratio round.
    #[arg(long)]
    pub quick: bool,

    /// Print the results as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// The settings after `--quick` and the default phase list are applied.
    pub fn resolved(mut self) -> Args {
        if self.quick {
            self.tasks = self.tasks.min(2_000);
            self.enqueue_tasks = self.enqueue_tasks.min(300);
            self.latency_secs = self.latency_secs.min(2);
            self.idle_samples = self.idle_samples.min(20);
            self.rss_tasks = self.rss_tasks.min(2_000);
            self.rounds = self.rounds.min(1);
        }
        self.tasks = self.tasks.max(1);
        self.enqueue_tasks = self.enqueue_tasks.max(1);
        self.batch = self.batch.max(1);
        self.workers = self.workers.max(1);
        self.clients = self.clients.max(1);
        self.rate = self.rate.max(1);
        self.latency_secs = self.latency_secs.max(1);
        if self.phases.is_empty() {
            self.phases = vec![
                Phase::Raw,
                Phase::Redis,
                Phase::RedisQueue,
                Phase::Http,
                Phase::Memory,
            ];
            if cfg!(feature = "kafka") {
                self.phases.push(Phase::Kafka);
            }
            self.phases.push(Phase::Rss);
        }
        if self.measure.is_empty() {
            self.measure = vec![Measure::Enqueue, Measure::Processing, Measure::Latency];
        }
        self.phases.sort();
        self.phases.dedup();
        self
    }

    /// Whether `phase` is to run.
    pub fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }

    /// Whether measurement `m` is to be taken.
    pub fn measures(&self, m: Measure) -> bool {
        self.measure.contains(&m)
    }

    /// The latency measurement's warm-up, excluded from the histogram.
    pub fn warmup_secs(&self) -> f64 {
        if self.quick {
            0.5
        } else {
            1.0
        }
    }
}
