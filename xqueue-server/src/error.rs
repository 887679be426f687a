//! [`AppError`]: every error the API answers with, as one JSON shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`, `field`) and people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable reason: `invalid_input`, `malformed_json`,
    /// `unknown_task_type`, `not_found`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `route_not_found`, `method_not_allowed`, `queue_full`,
    /// `backend_unavailable`, `shutting_down`, `timeout`, `unsupported`, `backend_error`,
    /// `corrupt_data`, `internal`.
    #[schema(example = "invalid_input")]
    pub code: &'static str,
    /// A sentence naming the problem.
    #[schema(example = "invalid priority: 12 is out of range 0..=9")]
    pub message: String,
    /// The request field or parameter at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "priority")]
    pub field: Option<String>,
}

/// An error answered to a client: a status, a code and a message, rendered as [`ErrorBody`].
#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    retry_after_secs: Option<u32>,
}

impl AppError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after_secs: None,
        }
    }

    /// `400 invalid_input` about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message).with_field(field)
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Places the error in item `index` of a batch: the field becomes `[index].field`.
    pub fn in_batch(mut self, index: usize) -> Self {
        self.field = Some(match self.field {
            Some(f) if !f.starts_with('[') => format!("[{index}].{f}"),
            Some(f) => f,
            None => format!("[{index}]"),
        });
        self.message = format!("task [{index}] of the batch: {}", self.message);
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// `404 route_not_found` for a path the API does not have.
    pub fn route_not_found(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!("no route {path}; see /api/v1/openapi.json"),
        )
    }

    /// `405 method_not_allowed`.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; see /api/v1/openapi.json"),
        )
    }
}

impl From<xqueue_core::Error> for AppError {
    /// The one mapping of core errors to HTTP.
    fn from(e: xqueue_core::Error) -> Self {
        use xqueue_core::Error as E;
        let message = e.to_string();
        match e {
            E::InvalidInput { field, .. } => AppError::invalid(field, message),
            E::UnknownTaskType(_) => {
                AppError::new(StatusCode::BAD_REQUEST, "unknown_task_type", message)
                    .with_field("type")
            }
            E::NotFound { .. } => AppError::new(StatusCode::NOT_FOUND, "not_found", message),
            E::Conflict { .. } => AppError::new(StatusCode::CONFLICT, "conflict", message),
            E::QueueFull { .. } => {
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", message).retry_after(1)
            }
            E::Unavailable { .. } => AppError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backend_unavailable",
                message,
            )
            .retry_after(1),
            E::ShuttingDown => {
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", message)
            }
            E::Timeout(_) => AppError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message),
            E::Unsupported { .. } => {
                AppError::new(StatusCode::NOT_IMPLEMENTED, "unsupported", message)
            }
            E::Backend { .. } => AppError::new(StatusCode::BAD_GATEWAY, "backend_error", message),
            E::Codec { .. } => {
                AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "corrupt_data", message)
            }
            // `xqueue_core::Error` is non-exhaustive: a variant added later is a server error
            // until it gets its own status here.
            _ => AppError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.code, message = %self.message, "request failed");
        } else {
            tracing::debug!(status = self.status.as_u16(), code = self.code, message = %self.message, "request rejected");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xqueue_core::{Error, TaskStatus};

    #[test]
    fn core_errors_map_to_statuses() {
        let cases: Vec<(Error, u16)> = vec![
            (Error::invalid("priority", "bad"), 400),
            (Error::UnknownTaskType("x".into()), 400),
            (Error::task_not_found("x"), 404),
            (
                Error::Conflict {
                    id: "x".into(),
                    status: TaskStatus::Processing,
                    reason: "running".into(),
                },
                409,
            ),
            (
                Error::QueueFull {
                    queue: "q".into(),
                    limit: 1,
                },
                503,
            ),
            (
                Error::Unavailable {
                    backend: "redis",
                    message: "down".into(),
                },
                503,
            ),
            (Error::ShuttingDown, 503),
            (Error::Timeout(std::time::Duration::from_secs(1)), 504),
            (
                Error::Unsupported {
                    backend: "kafka",
                    operation: "reclaim",
                },
                501,
            ),
            (
                Error::Backend {
                    backend: "redis",
                    message: "ERR".into(),
                },
                502,
            ),
            (
                Error::Codec {
                    what: "task".into(),
                    message: "eof".into(),
                },
                500,
            ),
        ];
        for (e, status) in cases {
            let shown = e.to_string();
            let r = AppError::from(e).into_response();
            assert_eq!(r.status().as_u16(), status, "{shown}");
        }
        let r = AppError::from(Error::QueueFull {
            queue: "q".into(),
            limit: 1,
        })
        .into_response();
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
