//! The OpenAPI document: operations come from each route's `#[utoipa::path]` (registered with
//! the router in one place, so the document lists exactly the routes served); this adds the
//! title, the tags and the shared schemas.

use utoipa::OpenApi;

/// Top-level document information.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "XQueue",
        description = "A distributed task queue. Submit tasks, inspect them, manage dead letters \
            and per-type concurrency limits. Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`. \
            Timestamps are RFC 3339 (UTC); `uptime` is in nanoseconds.",
        license(name = "MIT")
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    tags(
        (name = "tasks", description = "Submit, inspect, list and cancel tasks"),
        (name = "dead-letters", description = "Tasks that exhausted their retries: list, re-run, purge"),
        (name = "concurrency", description = "Per-type concurrency limits, shared by every instance"),
        (name = "monitoring", description = "Stream, workers, stats, health, Prometheus metrics"),
        (name = "docs", description = "This document")
    )
)]
pub struct ApiDoc;

/// The whole document, as served at `/api/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    crate::routes::api_router().split_for_parts().1
}
