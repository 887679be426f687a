//! Kafka-protocol broker containers for tests.
//!
//! The image comes from `XQUEUE_KAFKA_IMAGE`: by default the official `apache/kafka:3.9.0`
//! (for machines that can pull it); `scripts/test.sh` sets `xqueue-test/tansu:0.1.2`, built
//! locally by `scripts/build-images.sh`. Clients connect to the address the broker
//! advertises, so the broker runs on a free host port picked first and mapped to the same
//! port inside the container's advertised listener.

use std::time::{Duration, Instant};

use testcontainers::core::{ContainerPort, IntoContainerPort};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};
use xqueue_kafka::{KafkaBackend, KafkaConfig};

/// The image used when `XQUEUE_KAFKA_IMAGE` is unset.
pub const DEFAULT_IMAGE: &str = "apache/kafka:3.9.0";

/// A broker in a container; removed when dropped.
pub struct KafkaBroker {
    container: ContainerAsync<GenericImage>,
    bootstrap: String,
}

impl std::fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("id", &self.container.id())
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

impl KafkaBroker {
    /// Starts a broker and waits until it answers a metadata request.
    ///
    /// Returns `None` (the test should skip) when Docker is unavailable and not required.
    pub async fn start() -> Option<KafkaBroker> {
        if !crate::docker::require_docker() {
            return None;
        }
        let image = std::env::var("XQUEUE_KAFKA_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.into());
        let (name, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
        let port = crate::docker::free_port();
        let bootstrap = format!("127.0.0.1:{port}");
        let base = GenericImage::new(name, tag).with_exposed_port(9092.tcp());
        let request = if name.contains("tansu") {
            base.with_env_var("ADVERTISED_LISTENER_URL", format!("tcp://127.0.0.1:{port}"))
        } else {
            apache_kafka(base, port)
        };
        let container = request
            .with_mapped_port(port, ContainerPort::Tcp(9092))
            .start()
            .await
            .unwrap_or_else(|e| panic!("starting {image}: {e}"));
        let broker = KafkaBroker {
            container,
            bootstrap,
        };
        broker.wait_ready(Duration::from_secs(90)).await;
        Some(broker)
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The container, for fault injection.
    pub fn container(&self) -> &ContainerAsync<GenericImage> {
        &self.container
    }

    /// Polls with metadata requests until the broker answers (Docker's port proxy accepts
    /// connections before the broker listens, so an open port proves nothing).
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let mut cfg = KafkaConfig::new(self.bootstrap.clone());
            cfg.request_timeout = Duration::from_secs(3);
            match KafkaBackend::connect(cfg).await {
                Ok(_) => return,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("broker not ready yet: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("broker at {} never became ready: {e}", self.bootstrap),
            }
        }
    }

    /// A config for this broker in a namespace of its own (a unique topic prefix), with the
    /// short timeouts tests need (tansu's group join waits out the rebalance timeout).
    pub fn config(&self) -> KafkaConfig {
        test_config(&self.bootstrap)
    }

    /// A backend on this broker in a fresh namespace.
    pub async fn backend(&self) -> KafkaBackend {
        KafkaBackend::connect(self.config())
            .await
            .expect("connecting to the test broker")
    }
}

/// A [`KafkaConfig`] for tests: unique topic prefix, small group timeouts, fast commits.
/// `XQUEUE_KAFKA_DEBUG` sets librdkafka's `debug` property; `XQUEUE_KAFKA_PROPERTIES`
/// (`key=value,…`) adds any other.
pub fn test_config(bootstrap: &str) -> KafkaConfig {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut properties = std::collections::BTreeMap::new();
    // librdkafka's own debug contexts (e.g. `cgrp,topic`), logged at debug level.
    if let Ok(debug) = std::env::var("XQUEUE_KAFKA_DEBUG") {
        properties.insert("debug".to_string(), debug);
    }
    // Extra librdkafka properties, `key=value,key=value`.
    if let Ok(extra) = std::env::var("XQUEUE_KAFKA_PROPERTIES") {
        for pair in extra.split(',').filter(|p| !p.trim().is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("XQUEUE_KAFKA_PROPERTIES: {pair:?} is not key=value"));
            properties.insert(key.trim().to_string(), value.trim().to_string());
        }
    }
    KafkaConfig {
        properties,
        topic_prefix: format!("t{}", &id[..12]),
        partitions: 4,
        session_timeout: Duration::from_secs(6),
        max_poll_interval: Duration::from_secs(7),
        commit_interval: Duration::from_millis(200),
        fetch_wait_max: Duration::from_millis(20),
        revoke_drain: Duration::from_secs(3),
        assignment_timeout: Duration::from_secs(45),
        request_timeout: Duration::from_secs(15),
        ..KafkaConfig::new(bootstrap)
    }
}

/// Logs to the test output, filtered by `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// A group name no other test uses.
pub fn unique_group(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Single-node KRaft settings for the official image, advertising the host port.
fn apache_kafka(
    image: GenericImage,
    port: u16,
) -> testcontainers::core::ContainerRequest<GenericImage> {
    let env = [
        ("KAFKA_NODE_ID", "1".to_string()),
        ("KAFKA_PROCESS_ROLES", "broker,controller".into()),
        (
            "KAFKA_LISTENERS",
            "PLAINTEXT://0.0.0.0:9092,CONTROLLER://0.0.0.0:9093".into(),
        ),
        (
            "KAFKA_ADVERTISED_LISTENERS",
            format!("PLAINTEXT://127.0.0.1:{port}"),
        ),
        ("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER".into()),
        (
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
            "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".into(),
        ),
        ("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093".into()),
        ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1".into()),
        ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1".into()),
        ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1".into()),
        ("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0".into()),
    ];
    let mut request = image.with_env_var("KAFKA_LOG_DIRS", "/tmp/kraft-combined-logs");
    for (key, value) in env {
        request = request.with_env_var(key, value);
    }
    request
}
