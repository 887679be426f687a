//! Extractors whose every rejection is an [`AppError`], so bad input always gets the API's
//! JSON error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use xqueue_core::TaskId;

use crate::error::AppError;

/// A JSON request body (or response).
///
/// # Behavior
/// - A `Content-Type` other than `application/json` (or `application/*+json`) is
///   `415 unsupported_media_type`.
/// - A body over the size limit (`--max-body-bytes`) is `413 payload_too_large`.
/// - Text that is not JSON is `400 malformed_json`; JSON of the wrong shape (missing, unknown
///   or mistyped field) is `400 invalid_input` with `field` naming the path (`priority`,
///   `[2].type`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(AppError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request body with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than the server accepts (--max-body-bytes)",
                )
            } else {
                AppError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("could not read the request body: {}", e.body_text()),
                )
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Parses a JSON document, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                let field = named_field(&message)
                    .map(|f| join_path(&path, &f))
                    .unwrap_or_else(|| path.clone());
                let field = if field == "." { "body".into() } else { field };
                AppError::invalid(field.clone(), format!("invalid {field}: {message}"))
            }
            _ => AppError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the request body is not valid JSON: {inner}"),
            ),
        }
    })?;
    de.end().map_err(|e| {
        AppError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

fn join_path(path: &str, field: &str) -> String {
    if path == field || path.ends_with(&format!(".{field}")) {
        // serde_path_to_error already followed the (unknown) key.
        path.to_string()
    } else if path == "." || path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// The field serde names in "missing field `x`" / "unknown field `x`, expected …".
fn named_field(message: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `", "duplicate field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Query parameters; a parameter of the wrong type or an unknown one is `400 invalid_input`
/// naming it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => {
                let text = e.body_text();
                let reason = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text)
                    .to_string();
                // axum writes "<path>: <serde message>".
                let field = match reason.split_once(": ") {
                    Some((path, _)) if !path.is_empty() && !path.contains(' ') => path.to_string(),
                    _ => named_field(&reason).unwrap_or_else(|| "query".into()),
                };
                Err(AppError::invalid(
                    field,
                    format!("invalid query string: {reason}"),
                ))
            }
        }
    }
}

/// The `{task_id}` path parameter, parsed: anything that is not a task id (a UUID) is
/// `400 invalid_input` with `field: "task_id"`.
#[derive(Debug, Clone)]
pub struct TaskIdParam(pub TaskId);

impl<S: Send + Sync> FromRequestParts<S> for TaskIdParam {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| AppError::invalid("task_id", e.body_text()))?;
        Ok(TaskIdParam(raw.parse::<TaskId>()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        #[serde(rename = "type")]
        task_type: String,
        priority: Option<u8>,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_json::<T>(br#"{"priority":1}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_input");
        assert!(format!("{e:?}").contains("\"type\""), "{e:?}");
        let e = parse_json::<Vec<T>>(br#"[{"type":"a"},{"type":"a","priority":"x"}]"#).unwrap_err();
        assert!(format!("{e:?}").contains("[1].priority"), "{e:?}");
        let e = parse_json::<T>(br#"{"type":"a","bogus":1}"#).unwrap_err();
        assert!(format!("{e:?}").contains("bogus"), "{e:?}");
        let e = parse_json::<T>(br#"{"type":"#).unwrap_err();
        assert_eq!(e.code(), "malformed_json");
        let e = parse_json::<T>(br#"{"type":"a"} x"#).unwrap_err();
        assert_eq!(e.code(), "malformed_json");
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(
            header::CONTENT_TYPE,
            "application/problem+json".parse().unwrap(),
        );
        assert!(is_json(&h));
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&h));
    }
}
