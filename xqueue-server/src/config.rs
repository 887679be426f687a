//! [`ServerConfig`]: every setting of `xqueue-server`, as a command-line flag and an
//! environment variable.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Limits of the built-in task types, as in the Go version.
pub const DEFAULT_LIMITS: [(&str, u32); 2] = [("example", 3), ("email", 5)];

/// Which queue backend the server runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// In-process queues, state and limits: nothing survives a restart, nothing is shared.
    Memory,
    /// Redis Streams for the queues; task state and limits in the same Redis.
    Redis,
    /// Kafka topics for the queues; state and limits in Redis when `--redis-url` is given,
    /// else in memory.
    Kafka,
}

impl BackendKind {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Redis => "redis",
            BackendKind::Kafka => "kafka",
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A per-type concurrency limit: `TYPE=N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeLimit {
    /// The task type.
    pub task_type: String,
    /// Most tasks of that type running at once across every instance (at least 1).
    pub limit: u32,
}

impl FromStr for TypeLimit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (task_type, limit) = s
            .split_once('=')
            .ok_or_else(|| format!("{s:?} is not TYPE=N (e.g. example=3)"))?;
        let task_type = task_type.trim();
        xqueue_core::task::validate_task_type(task_type).map_err(|e| e.to_string())?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| format!("{limit:?} is not a whole number (in {s:?})"))?;
        if limit == 0 {
            return Err(format!("the limit in {s:?} must be at least 1"));
        }
        Ok(TypeLimit {
            task_type: task_type.to_string(),
            limit,
        })
    }
}

impl fmt::Display for TypeLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.task_type, self.limit)
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 500ms, 5s, 1h)"))
}

fn nonzero_duration(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be more than zero"));
    }
    Ok(d)
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number")),
    }
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Settings of `xqueue-server`. Every flag also reads the environment variable shown in
/// `--help`; a flag given on the command line wins over the variable.
#[derive(Clone, Parser)]
#[command(
    name = "xqueue-server",
    version,
    about = "XQueue: a distributed task queue with a REST API (Redis Streams, Kafka or in-memory)",
    long_about = "XQueue: a distributed task queue with a REST API.\n\n\
        Clients submit tasks over HTTP (POST /api/v1/tasks); workers run each task through the \
        handler registered for its type, under a per-type concurrency limit that holds across \
        every instance sharing the backend. Built-in task types: `example` (limit 3), `email` \
        (limit 5) and `noop` (no limit).\n\n\
        Durations are written like 500ms, 5s, 2m, 1h, 7days.",
    after_help = "Examples:\n  \
        xqueue-server                                     # in-memory, port 8080\n  \
        xqueue-server --backend redis --redis-url redis://127.0.0.1:6379\n  \
        XQUEUE_BACKEND=redis XQUEUE_LIMITS=example=3,email=5 xqueue-server\n  \
        xqueue-server --backend kafka --kafka-brokers 127.0.0.1:9092 --redis-url redis://127.0.0.1:6379"
)]
pub struct ServerConfig {
    /// Address the HTTP API listens on.
    #[arg(long, env = "XQUEUE_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Queue backend. `redis` needs the `redis` cargo feature (default), `kafka` the `kafka`
    /// feature.
    #[arg(long, env = "XQUEUE_BACKEND", value_enum, default_value = "memory")]
    pub backend: BackendKind,

    /// Worker slots of this instance: most tasks it runs at once.
    #[arg(long, env = "XQUEUE_WORKERS", default_value = "10", value_parser = at_least_one)]
    pub workers: usize,

    /// Most tasks per type started ahead of a free worker: as many as the workers get
    /// through in about 1 ms at the type's mean run time (at most this), for types without a
    /// concurrency limit; 0 turns it off.
    #[arg(long, env = "XQUEUE_START_AHEAD", default_value = "1000")]
    pub start_ahead: usize,

    /// Whether a task submitted to this instance goes straight to one of its idle workers
    /// (Redis backend): the submit's own round trip delivers and starts it, with no fetch or
    /// `begin` round trip after it. `true`/`false` (also `on`/`off`, `yes`/`no`, `1`/`0`).
    #[arg(long, env = "XQUEUE_START_ON_SUBMIT", default_value = "true",
        action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub start_on_submit: bool,

    /// Most messages fetched per queue per call, and buffered per task type: 50, and for a
    /// quick type as many as the workers get through in about 5 ms at its mean run time.
    #[arg(long, env = "XQUEUE_BATCH_SIZE", default_value = "500", value_parser = at_least_one)]
    pub batch_size: usize,

    /// How long a fetch waits for new messages (XREADGROUP BLOCK).
    #[arg(long, env = "XQUEUE_BLOCK_TIMEOUT", default_value = "5s", value_parser = nonzero_duration)]
    pub block_timeout: Duration,

    /// A delivery idle this long is taken over from its (presumably dead) consumer.
    #[arg(long, env = "XQUEUE_CLAIM_IDLE", default_value = "30s", value_parser = nonzero_duration)]
    pub claim_idle: Duration,

    /// A message delivered more often than this is dead-lettered without running (poison).
    #[arg(long, env = "XQUEUE_MAX_DELIVERIES", default_value = "5")]
    pub max_deliveries: u32,

    /// Most undelivered + un-acked messages per queue; submits past it answer 503.
    #[arg(long, env = "XQUEUE_MAX_STREAM_LENGTH", default_value = "100000")]
    pub max_stream_length: u64,

    /// Consumer group every instance joins.
    #[arg(long, env = "XQUEUE_GROUP", default_value = "xqueue-workers")]
    pub group: String,

    /// This instance's name (consumer name, limiter holder). Default: xqueue-<8 random hex>.
    #[arg(long, env = "XQUEUE_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Per-type concurrency limit across every instance, TYPE=N; repeat the flag or separate
    /// with commas. Built in: example=3, email=5 (a limit given here for the same type wins).
    #[arg(
        long = "limit",
        env = "XQUEUE_LIMITS",
        value_name = "TYPE=N",
        value_delimiter = ','
    )]
    pub limits: Vec<TypeLimit>,

    /// Redis URL (redis://[user][:password@]host[:port][/db], rediss:// for TLS). Used by
    /// `--backend redis` (default redis://127.0.0.1:6379) and, when given, for the state and
    /// limits of `--backend kafka`.
    #[arg(long, env = "XQUEUE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key XQueue writes.
    #[arg(long, env = "XQUEUE_KEY_PREFIX", default_value = "xqueue")]
    pub key_prefix: String,

    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(long, env = "XQUEUE_KAFKA_BROKERS", default_value = "localhost:9092")]
    pub kafka_brokers: String,

    /// Prefix of every Kafka topic XQueue creates (`{prefix}.{type}.{band}`).
    #[arg(long, env = "XQUEUE_KAFKA_TOPIC_PREFIX", default_value = "xqueue")]
    pub kafka_topic_prefix: String,

    /// Partitions of each Kafka topic XQueue creates.
    #[arg(long, env = "XQUEUE_KAFKA_PARTITIONS", default_value = "6")]
    pub kafka_partitions: i32,

    /// Kafka group session timeout: a silent member is removed after this long.
    #[arg(long, env = "XQUEUE_KAFKA_SESSION_TIMEOUT", default_value = "10s", value_parser = nonzero_duration)]
    pub kafka_session_timeout: Duration,

    /// Kafka max.poll.interval (also the rebalance timeout); at least the session timeout.
    #[arg(long, env = "XQUEUE_KAFKA_MAX_POLL_INTERVAL", default_value = "30s", value_parser = nonzero_duration)]
    pub kafka_max_poll_interval: Duration,

    /// Extra librdkafka property, KEY=VALUE; repeatable.
    #[arg(long = "kafka-property", env = "XQUEUE_KAFKA_PROPERTIES", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = key_value, hide_env_values = true)]
    pub kafka_properties: Vec<(String, String)>,

    /// On SIGINT/SIGTERM, how long running tasks get to finish; those still running then are
    /// given back to the queue and run again elsewhere.
    #[arg(long, env = "XQUEUE_SHUTDOWN_DEADLINE", default_value = "30s", value_parser = duration)]
    pub shutdown_deadline: Duration,

    /// How long `success` and `cancelled` tasks are kept.
    #[arg(long, env = "XQUEUE_RETENTION", default_value = "1h", value_parser = nonzero_duration)]
    pub retention: Duration,

    /// How long dead-lettered (`failed`) tasks are kept.
    #[arg(long, env = "XQUEUE_FAILED_RETENTION", default_value = "7days", value_parser = nonzero_duration)]
    pub failed_retention: Duration,

    /// Lease of concurrency permits: a crashed instance's permits are freed after this long.
    #[arg(long, env = "XQUEUE_LIMITER_LEASE", default_value = "30s", value_parser = nonzero_duration)]
    pub limiter_lease: Duration,

    /// Wait after a task's first failed attempt (doubles per attempt, with jitter).
    #[arg(long, env = "XQUEUE_RETRY_BACKOFF", default_value = "1s", value_parser = nonzero_duration)]
    pub retry_backoff: Duration,

    /// Longest wait between attempts of a failing task.
    #[arg(long, env = "XQUEUE_RETRY_BACKOFF_MAX", default_value = "10m", value_parser = nonzero_duration)]
    pub retry_backoff_max: Duration,

    /// Largest request body in bytes (a task's payload, a batch); larger answers 413.
    #[arg(long, env = "XQUEUE_MAX_BODY_BYTES", default_value = "1048576", value_parser = at_least_one)]
    pub max_body_bytes: usize,

    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, env = "XQUEUE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("backend", &self.backend)
            .field("workers", &self.workers)
            .field("start_ahead", &self.start_ahead)
            .field("start_on_submit", &self.start_on_submit)
            .field("batch_size", &self.batch_size)
            .field("block_timeout", &self.block_timeout)
            .field("claim_idle", &self.claim_idle)
            .field("max_deliveries", &self.max_deliveries)
            .field("max_stream_length", &self.max_stream_length)
            .field("group", &self.group)
            .field("instance_id", &self.instance_id)
            .field("limits", &self.limits)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(crate::backend::redact_url),
            )
            .field("key_prefix", &self.key_prefix)
            .field("kafka_brokers", &self.kafka_brokers)
            .field("kafka_topic_prefix", &self.kafka_topic_prefix)
            .field("kafka_partitions", &self.kafka_partitions)
            .field("kafka_properties", &self.kafka_properties.len())
            .field("shutdown_deadline", &self.shutdown_deadline)
            .field("retention", &self.retention)
            .field("failed_retention", &self.failed_retention)
            .field("limiter_lease", &self.limiter_lease)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// The configuration with every default (no flags, no environment).
    pub fn defaults() -> Self {
        ServerConfig::parse_from(["xqueue-server"])
    }

    /// Parses command-line style arguments (the first one is the program name), reading
    /// unset settings from the environment as the binary does.
    pub fn try_from_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        ServerConfig::try_parse_from(args)
    }

    /// Per-type limits: the built-in ones ([`DEFAULT_LIMITS`]) overridden by those given,
    /// the last one given per type winning.
    pub fn limit_map(&self) -> BTreeMap<String, u32> {
        DEFAULT_LIMITS
            .iter()
            .map(|(t, n)| (t.to_string(), *n))
            .chain(self.limits.iter().map(|l| (l.task_type.clone(), l.limit)))
            .collect()
    }

    /// The task manager's settings.
    pub fn manager_config(&self) -> xqueue_core::ManagerConfig {
        let mut c = xqueue_core::ManagerConfig {
            group: self.group.clone(),
            workers: self.workers,
            start_ahead: self.start_ahead,
            start_on_submit: self.start_on_submit,
            batch_size: self.batch_size,
            block_timeout: self.block_timeout,
            claim_idle: self.claim_idle,
            max_deliveries: self.max_deliveries,
            retry_backoff: xqueue_core::Backoff {
                base: self.retry_backoff,
                max: self.retry_backoff_max,
            },
            retention: self.retention,
            failed_retention: self.failed_retention,
            limiter_lease: self.limiter_lease,
            ..Default::default()
        };
        if let Some(id) = &self.instance_id {
            c.instance_id = id.clone();
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        ServerConfig::command().debug_assert();
    }

    #[test]
    fn limits_parse_from_flags() {
        let c = ServerConfig::try_parse_from([
            "xqueue-server",
            "--limit",
            "example=7",
            "--limit",
            "pdf=2,email=1",
        ])
        .unwrap();
        let m = c.limit_map();
        assert_eq!(m["example"], 7);
        assert_eq!(m["pdf"], 2);
        assert_eq!(m["email"], 1);
        assert!(ServerConfig::try_parse_from(["x", "--limit", "a=0"]).is_err());
        assert!(ServerConfig::try_parse_from(["x", "--limit", "a"]).is_err());
        assert!(ServerConfig::try_parse_from(["x", "--limit", "a.b=1"]).is_err());
    }

    #[test]
    fn defaults_match_the_go_version() {
        let c = ServerConfig::defaults();
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.backend, BackendKind::Memory);
        assert_eq!(c.workers, 10);
        // The Go version read 50 per call; ours buffers by run time, up to 200.
        assert_eq!(c.batch_size, 500);
        assert_eq!(c.block_timeout, Duration::from_secs(5));
        assert_eq!(c.limit_map()["example"], 3);
        assert_eq!(c.limit_map()["email"], 5);
        assert_eq!(c.manager_config().group, "xqueue-workers");
        assert_eq!(c.manager_config().start_ahead, 1000);
        let off = ServerConfig::try_parse_from(["x", "--start-ahead", "0"]).unwrap();
        assert_eq!(off.manager_config().start_ahead, 0);
        assert!(ServerConfig::try_parse_from(["x", "--start-ahead", "-1"]).is_err());
        assert!(c.manager_config().start_on_submit);
        let off = ServerConfig::try_parse_from(["x", "--start-on-submit", "off"]).unwrap();
        assert!(!off.manager_config().start_on_submit);
        assert!(ServerConfig::try_parse_from(["x", "--start-on-submit", "maybe"]).is_err());
        assert!(ServerConfig::try_parse_from(["x", "--block-timeout", "0s"]).is_err());
        assert!(ServerConfig::try_parse_from(["x", "--backend", "sqs"]).is_err());
    }

    #[test]
    fn debug_hides_the_redis_password() {
        let c =
            ServerConfig::try_parse_from(["x", "--redis-url", "redis://:s3cret@h:6379"]).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
