//! The OpenAPI document.

use axum::http::header;
use axum::response::IntoResponse;
use axum::Extension;

/// The document, serialised once at start-up.
#[derive(Clone)]
pub struct OpenApiJson(pub std::sync::Arc<String>);

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "docs",
    responses((status = 200, description = "OpenAPI document", content_type = "application/json"))
)]
pub async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
}
