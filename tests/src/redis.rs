//! Redis containers for tests.
