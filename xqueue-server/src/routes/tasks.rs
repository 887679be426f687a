//! Submit, inspect, list and cancel tasks.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use xqueue_core::TaskStatus;

use crate::dto::{
    parse_limit, BatchSubmitResponse, ListTasksQuery, SubmitTaskRequest, SubmitTaskResponse,
    TaskListResponse, TaskResponse, MAX_BATCH,
};
use crate::error::{AppError, ErrorBody};
use crate::extract::{Json, Query, TaskIdParam};
use crate::AppState;

/// Submit a task.
///
/// The task is stored and queued before this answers: it will run at least once, even if
/// this instance dies right after.
#[utoipa::path(
    post,
    path = "/api/v1/tasks",
    tag = "tasks",
    request_body = SubmitTaskRequest,
    responses(
        (status = 201, description = "Stored and queued (or scheduled)", body = SubmitTaskResponse),
        (status = 400, description = "Bad input: malformed JSON, missing or unknown type, out-of-range field", body = ErrorBody),
        (status = 413, description = "Body over --max-body-bytes", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 503, description = "Queue full (Retry-After), backend unavailable or shutting down", body = ErrorBody),
    )
)]
pub async fn submit_task(
    State(state): State<Arc<AppState>>,
    Json(request): Json<SubmitTaskRequest>,
) -> Result<(StatusCode, Json<SubmitTaskResponse>), AppError> {
    let task = state.manager.submit(request.into_new_task()?).await?;
    Ok((StatusCode::CREATED, Json(task.into())))
}

/// Submit several tasks, all or none.
///
/// One invalid task rejects the whole batch (the error's `field` names it, e.g.
/// `[3].priority`) and nothing is stored. At most 1000 tasks.
#[utoipa::path(
    post,
    path = "/api/v1/tasks/batch",
    tag = "tasks",
    request_body = Vec<SubmitTaskRequest>,
    responses(
        (status = 201, description = "All stored and queued", body = BatchSubmitResponse),
        (status = 400, description = "Bad input; nothing stored", body = ErrorBody),
        (status = 413, description = "Body over --max-body-bytes", body = ErrorBody),
        (status = 415, description = "Not application/json", body = ErrorBody),
        (status = 503, description = "Queue full, backend unavailable or shutting down", body = ErrorBody),
    )
)]
pub async fn submit_batch(
    State(state): State<Arc<AppState>>,
    Json(requests): Json<Vec<SubmitTaskRequest>>,
) -> Result<(StatusCode, Json<BatchSubmitResponse>), AppError> {
    if requests.is_empty() || requests.len() > MAX_BATCH {
        return Err(AppError::invalid(
            "body",
            format!(
                "a batch holds 1 to {MAX_BATCH} tasks, not {}",
                requests.len()
            ),
        ));
    }
    let known = state.manager.task_types();
    let new = requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let task = r.into_new_task().map_err(|e| e.in_batch(i))?;
            if !known.contains(&task.task_type) {
                let unknown = xqueue_core::Error::UnknownTaskType(task.task_type);
                return Err(AppError::from(unknown).in_batch(i));
            }
            Ok(task)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tasks = state.manager.submit_batch(new).await?;
    Ok((StatusCode::CREATED, Json(tasks.into())))
}

/// One task and its status.
#[utoipa::path(
    get,
    path = "/api/v1/tasks/{task_id}",
    tag = "tasks",
    params(("task_id" = String, Path, description = "The task's id (a UUID)")),
    responses(
        (status = 200, description = "The task", body = TaskResponse),
        (status = 400, description = "Not a task id", body = ErrorBody),
        (status = 404, description = "No such task (or past its retention)", body = ErrorBody),
    )
)]
pub async fn get_task(
    State(state): State<Arc<AppState>>,
    TaskIdParam(id): TaskIdParam,
) -> Result<Json<TaskResponse>, AppError> {
    Ok(Json(state.manager.get(&id).await?.into()))
}

/// Tasks in one status, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/tasks",
    tag = "tasks",
    params(ListTasksQuery),
    responses(
        (status = 200, description = "The tasks", body = TaskListResponse),
        (status = 400, description = "Unknown status, limit out of 1..=1000, unknown parameter", body = ErrorBody),
    )
)]
pub async fn list_tasks(
    State(state): State<Arc<AppState>>,
    Query(query): Query<ListTasksQuery>,
) -> Result<Json<TaskListResponse>, AppError> {
    let status: TaskStatus = query.status.as_deref().unwrap_or("pending").parse()?;
    let limit = parse_limit(query.limit.as_deref())?;
    let tasks = state.manager.list(status, limit).await?;
    Ok(Json(TaskListResponse {
        count: tasks.len(),
        tasks: tasks.into_iter().map(Into::into).collect(),
        status: status.to_string(),
        limit,
    }))
}

/// Cancel a task that has not started (`pending`, `scheduled` or `retrying`).
#[utoipa::path(
    post,
    path = "/api/v1/tasks/{task_id}/cancel",
    tag = "tasks",
    params(("task_id" = String, Path, description = "The task's id (a UUID)")),
    responses(
        (status = 200, description = "Cancelled; the task as it is now", body = TaskResponse),
        (status = 400, description = "Not a task id", body = ErrorBody),
        (status = 404, description = "No such task", body = ErrorBody),
        (status = 409, description = "Already running or finished", body = ErrorBody),
    )
)]
pub async fn cancel_task(
    State(state): State<Arc<AppState>>,
    TaskIdParam(id): TaskIdParam,
) -> Result<Json<TaskResponse>, AppError> {
    Ok(Json(state.manager.cancel(&id).await?.into()))
}
