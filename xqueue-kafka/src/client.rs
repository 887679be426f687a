//! librdkafka client settings and logging, shared by every client this crate creates.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

use crate::config::KafkaConfig;

/// Settings of the producer: every publish is durable once acknowledged.
pub(crate) fn producer_config(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = base(cfg);
    c.set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "1")
        .set("socket.nagle.disable", "true")
        .set("message.timeout.ms", millis(cfg.request_timeout));
    overrides(cfg, c)
}

/// Settings of a group member's consumer: at-least-once with out-of-order completion
/// (`enable.auto.offset.store=false`: only offsets XQueue stores are committed).
pub(crate) fn member_config(cfg: &KafkaConfig, group: &str, name: &str) -> ClientConfig {
    let mut c = base(cfg);
    c.set("group.id", cfg.group_id(group))
        .set("client.id", name)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", millis(cfg.commit_interval))
        .set("auto.offset.reset", "earliest")
        .set("allow.auto.create.topics", "false")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", millis(cfg.session_timeout))
        .set("max.poll.interval.ms", millis(cfg.max_poll_interval))
        .set("fetch.wait.max.ms", millis(cfg.fetch_wait_max))
        .set("socket.nagle.disable", "true");
    overrides(cfg, c)
}

/// Settings of a consumer that only reads metadata and committed offsets for `group`;
/// it never subscribes, so it never joins the group.
pub(crate) fn inspector_config(cfg: &KafkaConfig, group: &str) -> ClientConfig {
    let mut c = base(cfg);
    c.set("group.id", cfg.group_id(group))
        .set("client.id", "xqueue-inspector")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false");
    overrides(cfg, c)
}

/// Settings of the admin client (topic creation).
pub(crate) fn admin_config(cfg: &KafkaConfig) -> ClientConfig {
    overrides(cfg, base(cfg))
}

fn base(cfg: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (key, value) in cfg.common_properties() {
        c.set(key, value);
    }
    c.set("socket.timeout.ms", millis(cfg.request_timeout));
    // KIP-714 client metrics: not every Kafka-protocol broker answers them sanely.
    c.set("enable.metrics.push", "false");
    c.set_log_level(log_level());
    c
}

/// librdkafka's log level: as verbose as `tracing` listens to this module.
fn log_level() -> RDKafkaLogLevel {
    if tracing::enabled!(tracing::Level::DEBUG) {
        RDKafkaLogLevel::Debug
    } else if tracing::enabled!(tracing::Level::INFO) {
        RDKafkaLogLevel::Info
    } else {
        RDKafkaLogLevel::Warning
    }
}

fn overrides(cfg: &KafkaConfig, mut c: ClientConfig) -> ClientConfig {
    for (key, value) in &cfg.properties {
        c.set(key, value);
    }
    c
}

/// A duration in whole milliseconds (at least 1), as librdkafka wants it.
pub(crate) fn millis(d: std::time::Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// Sends librdkafka's log lines and global errors to `tracing`.
#[derive(Clone, Debug, Default)]
pub(crate) struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        log_line(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        log_error(&error, reason);
    }
}

impl ConsumerContext for TracingContext {}

/// Forwards one librdkafka log line.
pub(crate) fn log_line(level: RDKafkaLogLevel, fac: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(backend = "kafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(backend = "kafka", facility = fac, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(backend = "kafka", facility = fac, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(backend = "kafka", facility = fac, "{message}"),
    }
}

/// Forwards a global client error (broker down and the like; librdkafka retries by itself).
pub(crate) fn log_error(error: &KafkaError, reason: &str) {
    tracing::warn!(backend = "kafka", error = %error, "librdkafka: {reason}");
}
