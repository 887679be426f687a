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
//! contract of [`xqueue_core::QueueBackend`] (its [`xqueue_core::Capabilities`]).

mod backend;
mod client;
mod config;
mod error;
mod info;
mod member;
mod offsets;

pub use backend::KafkaBackend;
pub use config::KafkaConfig;
