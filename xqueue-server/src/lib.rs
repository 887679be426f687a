//! XQueue's REST API server: the Go version's endpoints on axum, over a
//! [`TaskManager`] whose backend is chosen at start-up.
//!
//! [`app`] builds the router (no socket: tests call it with `tower::ServiceExt::oneshot`);
//! [`server::run`] is the whole `xqueue-server` binary: backend, handlers, HTTP, graceful
//! shutdown. To serve your own handlers, register them on a [`TaskManager`] and serve
//! [`app`] (see `examples/custom_handler.rs`):
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use xqueue_core::{memory, ManagerConfig, TaskManager};
//! use xqueue_server::{app, handlers, AppState};
//!
//! let manager = TaskManager::new(memory::backends(), ManagerConfig::default());
//! handlers::register_builtin(&manager, &Default::default())?;
//! manager.start().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app(AppState::new(manager))).await?;
//! # Ok(()) }
//! ```
//!
//! # Behavior
//! - Every answer that is not a success is JSON: `{"error": {"code", "message", "field"?}}`,
//!   including unknown routes (404), wrong methods (405), bodies that are too large (413) or
//!   not JSON (415). Bad input is always a 4xx, never a 5xx.
//! - Backend errors map to 502/503/504 (see [`error::AppError`]); a full queue answers 503
//!   with `Retry-After`.
//! - The OpenAPI document at `/api/v1/openapi.json` is generated from the routes served.

pub mod backend;
pub mod config;
pub mod dto;
pub mod error;
pub mod extract;
pub mod handlers;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, Uri};
use axum::{Extension, Router};
use tower_http::trace::TraceLayer;
use xqueue_core::TaskManager;

pub use config::ServerConfig;
pub use error::AppError;

/// Default largest request body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    /// The task manager every handler calls.
    pub manager: TaskManager,
    /// Largest request body accepted; larger answers 413.
    pub max_body_bytes: usize,
    /// How long `/health` waits for the backend.
    pub health_timeout: Duration,
}

impl AppState {
    /// State over `manager`, with a 1 MiB body limit and a 3 s health probe.
    pub fn new(manager: TaskManager) -> Arc<Self> {
        Arc::new(AppState {
            manager,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            health_timeout: Duration::from_secs(3),
        })
    }

    /// State over `manager` with the settings of `config`.
    pub fn from_config(manager: TaskManager, config: &ServerConfig) -> Arc<Self> {
        Arc::new(AppState {
            manager,
            max_body_bytes: config.max_body_bytes,
            health_timeout: Duration::from_secs(3),
        })
    }
}

/// The whole HTTP API.
pub fn app(state: Arc<AppState>) -> Router {
    let (router, doc) = routes::api_router().split_for_parts();
    let doc = serde_json::to_string(&doc).unwrap_or_else(|_| "{}".into());
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(routes::docs::OpenApiJson(Arc::new(doc))))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found(uri: Uri) -> AppError {
    AppError::route_not_found(uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> AppError {
    AppError::method_not_allowed(method.as_str(), uri.path())
}
