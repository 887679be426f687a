//! The one place where redis-rs errors become [`xqueue_core::Error`].

use redis::{ErrorKind, RedisError, ServerErrorKind};
use xqueue_core::Error;

/// The backend kind used in errors and traces.
pub(crate) const KIND: &str = "redis";

/// Maps a driver error.
///
/// - Connection-level failures (I/O, timeouts, refused or dropped connections) and server
///   states that pass (loading, failover, a busy script) → [`Error::Unavailable`].
/// - A URL the driver rejects → [`Error::InvalidInput`] for `url`.
/// - Anything else the server refused → [`Error::Backend`].
pub(crate) fn map(e: RedisError) -> Error {
    if is_transient(&e) {
        return Error::Unavailable {
            backend: KIND,
            message: e.to_string(),
        };
    }
    if e.kind() == ErrorKind::InvalidClientConfig {
        return Error::invalid("url", e.to_string());
    }
    Error::Backend {
        backend: KIND,
        message: e.to_string(),
    }
}

/// Whether retrying later may succeed without any change.
fn is_transient(e: &RedisError) -> bool {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        return true;
    }
    if matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::ReadOnly
        )
    ) {
        return true;
    }
    matches!(
        e.code(),
        Some("BUSY" | "LOADING" | "MASTERDOWN" | "READONLY")
    )
}

/// Whether Redis answered that a consumer group (or its stream) does not exist.
///
/// Inside a script Redis reports the failing call's error, so the code is looked for in the
/// message too.
pub(crate) fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP")
}

/// A reply that does not have the shape XQueue's commands and scripts produce.
pub(crate) fn unexpected(what: &str, detail: impl std::fmt::Debug) -> Error {
    Error::Backend {
        backend: KIND,
        message: format!("unexpected reply to {what}: {detail:?}"),
    }
}

/// A queue without room for what was published.
pub(crate) fn queue_full(queue: String, limit: u64) -> Error {
    Error::QueueFull { queue, limit }
}

/// A task id that is taken already.
pub(crate) fn already_exists(id: &str) -> Error {
    Error::invalid("task_id", format!("task {id} already exists"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(map(io.into()), Error::Unavailable { .. }));
    }

    #[test]
    fn server_refusals_are_backend_errors() {
        let e = RedisError::from((ErrorKind::Client, "nope"));
        assert!(matches!(map(e), Error::Backend { .. }));
    }
}
