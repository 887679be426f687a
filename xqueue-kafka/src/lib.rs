//! Kafka backend for XQueue: queues are topics, workers are members of a consumer group.
//!
//! ```no_run
//! # async fn demo() -> xqueue_core::Result<()> {
//! use std::sync::Arc;
//! use xqueue_core::QueueBackend;
//! use xqueue_kafka::{KafkaBackend, KafkaConfig};
//!
//! let backend = KafkaBackend::connect(KafkaConfig::new("localhost:9092")).await?;
//! let queue: Arc<dyn QueueBackend> = Arc::new(backend);
//! assert_eq!(queue.kind(), "kafka");
//! # Ok(())
//! # }
//! ```
//!
//! See [`KafkaBackend`] for what the backend guarantees and where it differs from the
//! contract of [`xqueue_core::QueueBackend`].
//!
//! # Capabilities
//! | capability | Kafka | why |
//! |---|---|---|
//! | `idle_reclaim` | no | Kafka tracks a committed offset per partition, not per-message owners; a vanished member's messages come back on rebalance, after `session_timeout`. |
//! | `touch` | no | nothing to keep alive per message; the poll thread keeps the membership alive. |
//! | `durable` | yes | topics and committed offsets live on the brokers. |
//! | `shared` | yes | any number of processes join the same consumer group. |
//! | `delivery_count` | no | Kafka does not count deliveries: every delivery reports 1. |
//! | `exact_ack` | no | only the contiguous prefix of completed offsets is committed: acked messages above a gap are delivered again after a crash or rebalance. |

mod backend;
mod client;
mod config;
mod error;
mod info;
mod member;
mod offsets;

pub use backend::KafkaBackend;
pub use config::KafkaConfig;
