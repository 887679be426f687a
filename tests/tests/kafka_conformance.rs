//! The core conformance suite on Kafka (state store and limiter in memory), skipping the
//! cases Kafka's capabilities exclude (idle reclaim, touch, exact acks, delivery counts).
#![cfg(feature = "kafka")]

use std::sync::Arc;

use async_trait::async_trait;
use xqueue_core::testing::{run_conformance, Fixture};
use xqueue_core::{memory, Backends};
use xqueue_kafka::KafkaBackend;
use xqueue_tests::kafka::{init_tracing, KafkaBroker};

/// Hands out a Kafka backend in a fresh namespace (topic prefix, and with it the groups) per
/// call, all on one broker.
struct KafkaFixture {
    broker: KafkaBroker,
}

#[async_trait]
impl Fixture for KafkaFixture {
    async fn backends(&self) -> Backends {
        let queue = KafkaBackend::connect(self.broker.config())
            .await
            .expect("connecting to the test broker");
        Backends {
            queue: Arc::new(queue),
            state: Arc::new(memory::MemoryStateStore::new()),
            limiter: Arc::new(memory::MemoryLimiter::new()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_backend_passes_the_conformance_suite() {
    init_tracing();
    let Some(broker) = KafkaBroker::start().await else {
        return;
    };
    run_conformance(Arc::new(KafkaFixture { broker })).await;
}
