//! Kafka-protocol broker containers for tests.
