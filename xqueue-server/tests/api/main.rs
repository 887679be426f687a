//! The REST API through the router (no socket), on the memory backend.

mod bad_input;
mod lifecycle;
mod monitoring;
mod support;
mod tasks;
