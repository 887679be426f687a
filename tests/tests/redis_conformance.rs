//! The core conformance suite against the Redis backend, on a real Redis in a container.
//!
//! Every case gets backends under a fresh key prefix, so cases never see each other.

use std::sync::Arc;

use async_trait::async_trait;
use xqueue_core::testing::{run_conformance, Fixture};
use xqueue_core::Backends;
use xqueue_tests::redis::{unique_prefix, RedisServer};

struct RedisFixture {
    server: RedisServer,
}

#[async_trait]
impl Fixture for RedisFixture {
    async fn backends(&self) -> Backends {
        self.server.backend(&unique_prefix()).await.backends()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_passes_the_conformance_suite() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    run_conformance(Arc::new(RedisFixture { server })).await;
}
