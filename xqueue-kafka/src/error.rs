//! The one place where rdkafka's errors become [`xqueue_core::Error`].

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use xqueue_core::Error;

/// The backend kind used in every error.
pub(crate) const KIND: &str = "kafka";

/// Maps a driver error: connection-level trouble and timeouts are [`Error::Unavailable`]
/// (retryable), everything else the broker or librdkafka refused is [`Error::Backend`].
pub(crate) fn map(context: &str, err: KafkaError) -> Error {
    let message = format!("{context}: {err}");
    let retryable = match &err {
        KafkaError::Canceled => true,
        KafkaError::ClientConfig(..) => {
            return Error::invalid("properties", message);
        }
        other => other.rdkafka_error_code().is_some_and(is_transient),
    };
    if retryable {
        Error::Unavailable {
            backend: KIND,
            message,
        }
    } else {
        Error::Backend {
            backend: KIND,
            message,
        }
    }
}

/// Errors that go away by themselves: brokers unreachable or busy, leadership moving.
fn is_transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::Resolve
            | C::MessageTimedOut
            | C::OperationTimedOut
            | C::TimedOutQueue
            | C::RequestTimedOut
            | C::QueueFull
            | C::NetworkException
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::RebalanceInProgress
            | C::WaitingForCoordinator
            | C::KafkaStorageError
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::ThrottlingQuotaExceeded
            | C::Retry
    )
}

/// An error for a broker answer that is not an rdkafka error value (admin results).
pub(crate) fn code(context: &str, code: RDKafkaErrorCode) -> Error {
    let message = format!("{context}: {code}");
    if is_transient(code) {
        Error::Unavailable {
            backend: KIND,
            message,
        }
    } else {
        Error::Backend {
            backend: KIND,
            message,
        }
    }
}

/// A task that ran a blocking driver call died.
pub(crate) fn join(context: &str, err: tokio::task::JoinError) -> Error {
    Error::Backend {
        backend: KIND,
        message: format!("{context}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_errors_are_retryable_and_refusals_are_not() {
        let down = map(
            "publish",
            KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown),
        );
        assert!(down.is_retryable(), "{down}");
        assert!(down.to_string().contains("publish"), "{down}");
        let refused = map(
            "publish",
            KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed),
        );
        assert!(
            matches!(
                refused,
                Error::Backend {
                    backend: "kafka",
                    ..
                }
            ),
            "{refused}"
        );
        assert!(code("create topic", RDKafkaErrorCode::RequestTimedOut).is_retryable());
    }
}
