//! The dead-letter set: tasks that exhausted their retries, failed fatally, or were delivered
//! too often (poison). List, re-run, purge.

use std::sync::Arc;

use axum::extract::State;

use crate::dto::{
    parse_limit, DeadLetterSelection, LimitQuery, PurgeResponse, RequeueResponse, TaskListResponse,
};
use crate::error::{AppError, ErrorBody};
use crate::extract::{Json, Query};
use crate::AppState;

/// Dead-lettered tasks (status `failed`), oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/dead-letters",
    tag = "dead-letters",
    params(LimitQuery),
    responses(
        (status = 200, description = "The dead letters", body = TaskListResponse),
        (status = 400, description = "Limit out of 1..=1000", body = ErrorBody),
    )
)]
pub async fn list_dead_letters(
    State(state): State<Arc<AppState>>,
    Query(query): Query<LimitQuery>,
) -> Result<Json<TaskListResponse>, AppError> {
    let limit = parse_limit(query.limit.as_deref())?;
    let tasks = state.manager.dead_letters(limit).await?;
    Ok(Json(TaskListResponse {
        count: tasks.len(),
        tasks: tasks.into_iter().map(Into::into).collect(),
        status: "failed".into(),
        limit,
    }))
}

/// Re-run dead letters with fresh attempts: `{"task_ids": [...]}` or `{"all": true}`.
///
/// They are queued again within one scheduler tick (100 ms).
#[utoipa::path(
    post,
    path = "/api/v1/dead-letters/requeue",
    tag = "dead-letters",
    request_body = DeadLetterSelection,
    responses(
        (status = 200, description = "How many were requeued", body = RequeueResponse),
        (status = 400, description = "Neither task_ids nor all, or a bad id", body = ErrorBody),
    )
)]
pub async fn requeue_dead_letters(
    State(state): State<Arc<AppState>>,
    Json(selection): Json<DeadLetterSelection>,
) -> Result<Json<RequeueResponse>, AppError> {
    let ids = selection.into_ids()?;
    let requeued = state.manager.requeue_dead(ids.as_deref()).await?;
    Ok(Json(RequeueResponse { requeued }))
}

/// Delete dead letters: `{"task_ids": [...]}` or `{"all": true}`.
#[utoipa::path(
    delete,
    path = "/api/v1/dead-letters",
    tag = "dead-letters",
    request_body = DeadLetterSelection,
    responses(
        (status = 200, description = "How many were deleted", body = PurgeResponse),
        (status = 400, description = "Neither task_ids nor all, or a bad id", body = ErrorBody),
    )
)]
pub async fn purge_dead_letters(
    State(state): State<Arc<AppState>>,
    Json(selection): Json<DeadLetterSelection>,
) -> Result<Json<PurgeResponse>, AppError> {
    let ids = selection.into_ids()?;
    let purged = state.manager.purge_dead(ids.as_deref()).await?;
    Ok(Json(PurgeResponse { purged }))
}
