//! Support for XQueue's integration tests: brokers in containers built from local images.
//!
//! Tests that need Docker call [`docker::require_docker`]: without Docker they fail when
//! `XQUEUE_REQUIRE_DOCKER=1` (CI, `scripts/test.sh`) and otherwise skip with a message.

pub mod docker;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod queue;
pub mod redis;
pub mod state;
