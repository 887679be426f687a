//! The REST API's routes: thin handlers that extract, call one `TaskManager` method and map
//! the answer to a DTO. Each route is registered once, with its OpenAPI description.

pub mod concurrency;
pub mod dead_letters;
pub mod docs;
pub mod monitor;
pub mod tasks;

use std::sync::Arc;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Every route with its OpenAPI operation.
pub(crate) fn api_router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(tasks::submit_task, tasks::list_tasks))
        .routes(routes!(tasks::submit_batch))
        .routes(routes!(tasks::get_task))
        .routes(routes!(tasks::cancel_task))
        .routes(routes!(
            dead_letters::list_dead_letters,
            dead_letters::purge_dead_letters
        ))
        .routes(routes!(dead_letters::requeue_dead_letters))
        .routes(routes!(
            concurrency::set_concurrency,
            concurrency::get_concurrency
        ))
        .routes(routes!(monitor::stream))
        .routes(routes!(monitor::workers))
        .routes(routes!(monitor::stats))
        .routes(routes!(monitor::health))
        .routes(routes!(monitor::metrics))
        .routes(routes!(docs::openapi_json))
}
