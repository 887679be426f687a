//! Monitoring: stream, workers, stats, health, Prometheus metrics.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use crate::dto::{rfc3339, HealthResponse, StatsResponse, StreamResponse, WorkersResponse};
use crate::error::{AppError, ErrorBody};
use crate::extract::Json;
use crate::AppState;

/// The queues: length, groups and consumers (summed over every queue, then per queue).
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "monitoring",
    responses(
        (status = 200, description = "Queue information", body = StreamResponse),
        (status = 503, description = "Backend unavailable", body = ErrorBody),
    )
)]
pub async fn stream(State(state): State<Arc<AppState>>) -> Result<Json<StreamResponse>, AppError> {
    Ok(Json(StreamResponse {
        stream_info: state.manager.queue_stats().await?.into(),
    }))
}

/// This instance's worker pool (`uptime` in nanoseconds).
#[utoipa::path(
    get,
    path = "/api/v1/workers",
    tag = "monitoring",
    responses((status = 200, description = "Worker pool", body = WorkersResponse))
)]
pub async fn workers(State(state): State<Arc<AppState>>) -> Json<WorkersResponse> {
    let instance_id = state.manager.config().instance_id.clone();
    Json(WorkersResponse::new(
        state.manager.worker_stats(),
        instance_id,
    ))
}

/// Task counts across the deployment, and this instance's view.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "monitoring",
    responses(
        (status = 200, description = "Statistics", body = StatsResponse),
        (status = 503, description = "Backend unavailable", body = ErrorBody),
    )
)]
pub async fn stats(State(state): State<Arc<AppState>>) -> Result<Json<StatsResponse>, AppError> {
    Ok(Json(state.manager.stats().await?.into()))
}

/// Health: 200 when the backend answers, 503 when it does not (or not in time).
#[utoipa::path(
    get,
    path = "/api/v1/health",
    tag = "monitoring",
    responses(
        (status = 200, description = "Healthy", body = HealthResponse),
        (status = 503, description = "Backend unreachable", body = HealthResponse),
    )
)]
pub async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<HealthResponse>) {
    let probe = tokio::time::timeout(state.health_timeout, state.manager.stats()).await;
    let error = match probe {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!(
            "the backend did not answer within {:?}",
            state.health_timeout
        )),
    };
    let status = if error.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = HealthResponse {
        status: if error.is_none() {
            "healthy"
        } else {
            "unhealthy"
        }
        .into(),
        backend: state.manager.backends().queue.kind().into(),
        backend_reachable: error.is_none(),
        is_running: state.manager.is_running(),
        instance_id: state.manager.config().instance_id.clone(),
        timestamp: rfc3339(xqueue_core::now_millis()),
        error,
    };
    (status, Json(body))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "monitoring",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
        (status = 503, description = "Backend unavailable", body = ErrorBody),
    )
)]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, AppError> {
    let stats = state.manager.stats().await?;
    Ok((
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&stats),
    ))
}
