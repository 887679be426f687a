//! Per-type concurrency limits, shared by every instance.

use std::sync::Arc;

use axum::extract::State;

use crate::dto::{ConcurrencyResponse, SetConcurrencyRequest, SetConcurrencyResponse};
use crate::error::{AppError, ErrorBody};
use crate::extract::Json;
use crate::AppState;

/// Set a task type's limit at run time, for every instance.
#[utoipa::path(
    post,
    path = "/api/v1/concurrency",
    tag = "concurrency",
    request_body = SetConcurrencyRequest,
    responses(
        (status = 200, description = "Limit set", body = SetConcurrencyResponse),
        (status = 400, description = "Bad task type or max_concurrency below 1", body = ErrorBody),
    )
)]
pub async fn set_concurrency(
    State(state): State<Arc<AppState>>,
    Json(request): Json<SetConcurrencyRequest>,
) -> Result<Json<SetConcurrencyResponse>, AppError> {
    let limit = request.limit()?;
    state
        .manager
        .set_concurrency_limit(&request.task_type, limit)
        .await?;
    Ok(Json(SetConcurrencyResponse {
        task_type: request.task_type,
        max_concurrency: limit,
    }))
}

/// Every limit that is set.
#[utoipa::path(
    get,
    path = "/api/v1/concurrency",
    tag = "concurrency",
    responses((status = 200, description = "Task type → limit", body = ConcurrencyResponse))
)]
pub async fn get_concurrency(
    State(state): State<Arc<AppState>>,
) -> Result<Json<ConcurrencyResponse>, AppError> {
    Ok(Json(ConcurrencyResponse {
        concurrency_limits: state.manager.concurrency_limits().await?,
    }))
}
