//! Start-up backend selection: `--backend memory|redis|kafka` to [`Backends`].
//!
//! The only place in the server that names a backend crate or a cargo feature.

use std::sync::Arc;

use xqueue_core::{memory, Backends};

use crate::config::{BackendKind, ServerConfig};

/// Why the server could not get its backends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// The backend was not compiled into this binary.
    #[error(
        "the {backend} backend is not compiled into this binary: rebuild with \
         `cargo build -p xqueue-server --features {feature}`"
    )]
    FeatureMissing {
        /// The backend asked for.
        backend: &'static str,
        /// The cargo feature that enables it.
        feature: &'static str,
    },
    /// The backend refused the settings or could not be reached.
    #[error("connecting to the {backend} backend: {source}")]
    Connect {
        /// The backend.
        backend: &'static str,
        /// What went wrong.
        #[source]
        source: xqueue_core::Error,
    },
}

/// Connects to the backend `config` selects.
///
/// # Behavior
/// - `memory`: in-process queues (bounded by `--max-stream-length`), state and limits.
/// - `redis`: queues, state and limits in one Redis (`--redis-url`, default
///   `redis://127.0.0.1:6379`).
/// - `kafka`: queues on Kafka; state and limits in Redis when `--redis-url` is given, else in
///   memory (then only this instance can answer for its tasks).
/// - A backend not compiled in is [`StartupError::FeatureMissing`], naming the cargo feature.
pub async fn connect(config: &ServerConfig) -> Result<Backends, StartupError> {
    match config.backend {
        BackendKind::Memory => Ok(memory_backends(config)),
        BackendKind::Redis => {
            let url = config
                .redis_url
                .clone()
                .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
            redis_backends(config, url).await
        }
        BackendKind::Kafka => {
            let queue = kafka_queue(config).await?;
            let rest = match &config.redis_url {
                Some(url) => redis_backends(config, url.clone()).await?,
                None => memory_backends(config),
            };
            Ok(Backends { queue, ..rest })
        }
    }
}

fn memory_backends(config: &ServerConfig) -> Backends {
    Backends {
        queue: Arc::new(memory::MemoryQueue::new(config.max_stream_length)),
        ..memory::backends()
    }
}

#[cfg(feature = "redis")]
async fn redis_backends(config: &ServerConfig, url: String) -> Result<Backends, StartupError> {
    let redis_config = xqueue_redis::RedisConfig {
        limiter_lease: config.limiter_lease,
        ..xqueue_redis::RedisConfig::new(url)
            .key_prefix(config.key_prefix.clone())
            .max_len(config.max_stream_length)
    };
    tracing::info!(redis = ?redis_config, "connecting to Redis");
    let backend = xqueue_redis::RedisBackend::connect(redis_config)
        .await
        .map_err(|source| StartupError::Connect {
            backend: "redis",
            source,
        })?;
    Ok(backend.backends())
}

#[cfg(not(feature = "redis"))]
async fn redis_backends(_config: &ServerConfig, _url: String) -> Result<Backends, StartupError> {
    Err(StartupError::FeatureMissing {
        backend: "redis",
        feature: "redis",
    })
}

#[cfg(feature = "kafka")]
async fn kafka_queue(
    config: &ServerConfig,
) -> Result<Arc<dyn xqueue_core::QueueBackend>, StartupError> {
    let mut kafka_config = xqueue_kafka::KafkaConfig {
        session_timeout: config.kafka_session_timeout,
        max_poll_interval: config.kafka_max_poll_interval,
        ..xqueue_kafka::KafkaConfig::new(config.kafka_brokers.clone())
            .topic_prefix(config.kafka_topic_prefix.clone())
            .partitions(config.kafka_partitions)
    };
    for (key, value) in &config.kafka_properties {
        kafka_config = kafka_config.property(key.clone(), value.clone());
    }
    tracing::info!(kafka = ?kafka_config, "connecting to Kafka");
    let backend = xqueue_kafka::KafkaBackend::connect(kafka_config)
        .await
        .map_err(|source| StartupError::Connect {
            backend: "kafka",
            source,
        })?;
    Ok(Arc::new(backend))
}

#[cfg(not(feature = "kafka"))]
async fn kafka_queue(
    _config: &ServerConfig,
) -> Result<Arc<dyn xqueue_core::QueueBackend>, StartupError> {
    Err(StartupError::FeatureMissing {
        backend: "kafka",
        feature: "kafka",
    })
}

/// `scheme://user:secret@host` → `scheme://user:***@host`, for logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let user = rest[..at].split(':').next().unwrap_or_default();
    format!("{}{user}:***{}", &url[..scheme_end], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact_url("redis://:pw@h:1/0"), "redis://:***@h:1/0");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
    }

    #[tokio::test]
    async fn memory_needs_nothing() {
        let b = connect(&ServerConfig::defaults()).await.unwrap();
        assert_eq!(b.queue.kind(), "memory");
    }

    #[cfg(not(feature = "kafka"))]
    #[tokio::test]
    async fn a_backend_not_compiled_in_names_its_feature() {
        let c = <ServerConfig as clap::Parser>::parse_from(["x", "--backend", "kafka"]);
        let e = connect(&c).await.unwrap_err().to_string();
        assert!(e.contains("--features kafka"), "{e}");
    }
}
